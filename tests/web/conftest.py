"""The web page in a real headless Chromium (Debian's, driven by Playwright) against a
live ``lamina serve`` on a real small GGUF (SmolLM2-135M-Instruct, from its wheel).

The server runs with an API key and ``--queue 0``, so a second request while one
is generating is a real 429. Each test gets a fresh browser context (empty
localStorage and sessionStorage) whose page has already been given the key;
every request the page makes is recorded, so a test can check that nothing
left for another host. Screenshots go to tests/.artifacts/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import Server, start_server, stop_server

API_KEY = "web-key-42"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"


def chromium_path() -> str | None:
    """Debian's chromium (apt-get install chromium), or LAMINA_CHROMIUM."""
    for candidate in (os.environ.get("LAMINA_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


#: Wraps fetch so a test can read the raw server-sent events the page received
#: (Chromium does not keep the bodies of streamed responses for DevTools).
TEE_SCRIPT = """
(() => {
  const original = window.fetch;
  window.__sse = [];
  window.fetch = async (...args) => {
    const resp = await original(...args);
    if (String(args[0]).includes("/v1/chat/completions") && resp.ok && resp.body) {
      const [mine, copy] = resp.body.tee();
      const slot = window.__sse.push({ text: "", done: false }) - 1;
      (async () => {
        const reader = copy.pipeThrough(new TextDecoderStream()).getReader();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            window.__sse[slot].text += value;
          }
        } catch {}
        window.__sse[slot].done = true;
      })();
      return new Response(mine, { status: resp.status, statusText: resp.statusText,
                                  headers: resp.headers });
    }
    return resp;
  };
})();
"""


@pytest.fixture(scope="session")
def smollm2() -> Path:
    from tests.realmodels.conftest import model_file

    return model_file("smollm2")


@pytest.fixture(scope="module")
def web_server(smollm2: Path) -> Iterator[Server]:
    srv = start_server(smollm2, "--parallel", "1", "--ctx", "1024", "--queue", "0", "--max-tokens", "512",
                       api_key=API_KEY)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the web page's "
                    "browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path)
        yield b
        b.close()


class PageRun:
    """A page on the server plus what it requested and the console errors it logged."""

    def __init__(self, page, server: Server) -> None:
        self.page = page
        self.server = server
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, key: str | None = API_KEY, path: str = "/") -> None:
        self.page.goto(self.server.url + path)
        if key is not None:
            self.page.wait_for_selector("#key-dialog[open]")
            self.page.fill("#key-input", key)
            self.page.click("#key-ok")
        self.page.wait_for_selector("body.ready")

    def idle(self) -> None:
        """Wait until the server's slot is free (a stopped stream ends at its next piece)."""
        self.server.wait_for(lambda h: h["slots"]["busy"] == 0)

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests
                if not u.startswith(self.server.url + "/") and not u.startswith(("data:", "blob:"))]


@pytest.fixture()
def web(browser, web_server: Server) -> Iterator[PageRun]:
    context = browser.new_context(viewport={"width": 1100, "height": 720}, accept_downloads=True,
                                  locale="zh-CN")
    context.add_init_script(TEE_SCRIPT)
    run = PageRun(context.new_page(), web_server)
    run.idle()
    yield run
    context.close()
    assert not run.errors, f"JavaScript errors on the page: {run.errors}"
    assert not run.foreign_requests(), f"the page reached outside the server: {run.foreign_requests()}"


def screenshot(page, name: str) -> Path:
    """Keep a screenshot as a test artifact (tests/.artifacts/NAME.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
