"""The web page's server side: public static files with a strict CSP, everything
shipped in the package and nothing fetched from elsewhere, the model card and task
table the page starts from, and ``lamina ui`` opening the page."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import tomllib

from lamina.server.page import WEB_DIR
from tests.server.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def assets() -> list[Path]:
    return sorted(p for p in WEB_DIR.rglob("*") if p.is_file())


def test_page_and_assets_are_public_but_the_api_still_needs_the_key(server):
    page = httpx.get(server.url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe" not in csp
    for path in ("/ui/js/app.js", "/ui/style.css", "/ui/icon.svg"):
        r = httpx.get(server.url + path, timeout=10)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == csp
        assert r.headers["cache-control"] == "no-cache"
    assert "javascript" in httpx.get(server.url + "/ui/js/app.js", timeout=10) \
        .headers["content-type"]
    assert httpx.get(server.url + "/v1/models", timeout=10).status_code == 401
    for escape in ("/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/nothing.js"):
        r = httpx.get(server.url + escape, timeout=10)
        assert r.status_code in (401, 404), escape  # never a file outside web/
        assert "create_app" not in r.text


def test_every_asset_ships_in_the_package_and_nothing_comes_from_elsewhere():
    html = (WEB_DIR / "index.html").read_text("utf-8")
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs, "index.html lost its assets"
    for ref in refs:
        assert ref.startswith("/ui/"), f"index.html loads {ref} from outside the package"
        assert (WEB_DIR / ref.removeprefix("/ui/")).is_file(), ref
    for js in WEB_DIR.glob("js/*.js"):
        text = js.read_text("utf-8")
        for spec in re.findall(r'^\s*import\b[^"\n]*"([^"]+)"', text, flags=re.M) + \
                re.findall(r'\bfrom "([^"]+)"', text):
            assert spec.startswith("./") and (js.parent / spec).is_file(), f"{js.name}: {spec}"
        for url in re.findall(r'fetch\(\s*([^,)]+)', text):
            assert url.strip() == "path", f"{js.name} fetches {url}"  # api.js's one fetch
    for path in assets():
        if path.suffix in (".html", ".css", ".js", ".svg"):
            text = path.read_text("utf-8")
            urls = [u for u in re.findall(r"[a-z]+://[^\s\"')]+", text)
                    if u != "http://www.w3.org/2000/svg"]
            assert not urls, f"{path.name} refers to {urls}"
            assert "@import" not in text and "@font-face" not in text, path.name


def test_the_wheel_keeps_the_web_files():
    """scikit-build's wheel.packages maps src/lamina whole; no exclude drops the page."""
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]["scikit-build"][
        "wheel"]
    assert wheel["packages"]["lamina"] == "src/lamina"
    shipped = sorted(p for p in (REPO / "src/lamina/server/web").rglob("*") if p.is_file())
    assert len(shipped) >= 8
    for path in shipped:
        rel = path.relative_to(REPO / "src").as_posix()
        assert not any(fnmatch.fnmatch(rel, pat) for pat in wheel.get("exclude", [])), rel


def test_model_card_carries_the_models_sampling_defaults_and_the_cap(server, model):
    card = httpx.get(f"{server.v1}/models", headers=server.headers(), timeout=10).json()["data"][0]
    assert card["sampling"] == model.default_params.as_dict()
    assert card["max_tokens"] == 1000  # the fixture's --max-tokens
    assert card["template"] == model.template.name


def test_extract_tasks_lists_every_task_with_a_schema_the_task_accepts(server):
    from lamina.ie.schema_split import normalize_schema
    from lamina.ie.tasks import TASKS

    r = httpx.get(f"{server.v1}/extract/tasks", headers=server.headers(), timeout=10)
    tasks = r.json()["data"]
    assert [t["name"] for t in tasks] == list(TASKS)
    for t in tasks:
        assert normalize_schema(t["name"], t["example"]) == t["example"]
        spec = TASKS[t["name"]]
        assert (t["item_kind"], t["key_field"], t["list_field"]) == \
            (spec.item_kind, spec.key_field, spec.list_field)


def test_lamina_ui_serves_and_opens_the_page_in_the_browser(chat_gguf, tmp_path):
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    browser.chmod(0o755)
    port = free_port()
    env = {**os.environ, "BROWSER": f"{sys.executable} {browser} %s"}
    proc = subprocess.Popen([sys.executable, "-m", "lamina", "ui", str(chat_gguf), "--port",
                             str(port), "--threads", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not opened.exists() or not opened.read_text():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "lamina ui never opened the page"
            time.sleep(0.1)
        url = opened.read_text()
        assert url == f"http://127.0.0.1:{port}/"
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "/ui/js/app.js" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert f"web page http://127.0.0.1:{port}/" in " ".join(proc.stderr.read().split())


def test_extract_documents_reads_an_upload_like_lamina_extract_reads_a_file(server):
    lines = [
        {"id": "a", "text": "张三在杭州。", "source": "news",
         "label": {"人物": ["张三"], "地理位置": ["杭州"], "组织机构": []}},
        "{not json",
        {"instruction": '{"instruction": "x", "schema": ["人物"], "input": "y"}'},
        {"instruction": "找出人名", "input": "李四来了。"},
        {"id": "r", "text": "王五", "task": "RE"},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)
                     for x in lines)
    r = httpx.post(f"{server.v1}/extract/documents", headers=server.headers(), timeout=10,
                   json={"name": "docs.jsonl", "text": text, "task": "ner"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "NER"
    assert body["documents"] == [
        {"id": "a", "text": "张三在杭州。", "label": lines[0]["label"], "source": "news"},
        {"id": "4", "text": "李四来了。"}]
    reasons = [b["error"] for b in body["bad"]]
    assert len(reasons) == 3
    assert "line 2 is not valid JSON" in reasons[0]
    assert "iepile" in reasons[1]  # its own instruction and schema: lamina extract -i
    assert "RE record" in reasons[2]
    bad_task = httpx.post(f"{server.v1}/extract/documents", headers=server.headers(),
                          timeout=10, json={"text": "x", "task": "POS"})
    assert bad_task.status_code == 400 and "Unknown extraction task" in bad_task.text
