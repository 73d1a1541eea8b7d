"""`lamina demo` end to end, and every documented example that runs on the demo model.

The `console` blocks of README.md and docs/*.md are the documentation users copy
from; this test reads them and runs each `$ lamina ...` line that uses the demo
folder, so the docs cannot go stale. The README's lines run first, then each
docs page's in file-name order, all in one folder; a page's examples may use
what its own earlier examples wrote, but not another page's. Long-running
commands (`lamina serve`) are skipped: the server has its own tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
DEMO_DIR = "lamina-demo"


def lamina_cmd() -> list[str]:
    return [sys.executable, "-m", "lamina"]


def doc_pages() -> list[Path]:
    """README.md, then docs/*.md by name."""
    return [README, *sorted(DOCS.glob("*.md"))]


def readme_examples(page: Path = README) -> list[str]:
    """Shell lines `$ lamina ...` (or `$ echo ... | lamina ...`) from ```console blocks."""
    text = page.read_text(encoding="utf-8")
    lines: list[str] = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ ") and "lamina" in line and DEMO_DIR in line:
                lines.append(line[2:].strip())
    return lines


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "COLUMNS": "120", "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run([*lamina_cmd(), "demo", "--workdir", DEMO_DIR, "--keep"], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=900)
    return cwd, proc


def test_demo_builds_model_and_prints_tables(demo_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    cwd, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    model = cwd / DEMO_DIR / "demo-q4_k_m.gguf"
    assert model.is_file() and model.stat().st_size > 100_000
    # the size table and the quality table
    assert "Output Q4_K_M" in out and "Bits/weight" in out
    assert "Top-1 agreement" in out and "Perplexity" in out
    # the trained chat answer survives merge + conversion + 4-bit quantization
    assert "西湖位于浙江省杭州市" in out
    # the NER answer is the schema's keys, in order, as JSON
    keys = [k for k in ("人物", "地理位置", "组织机构") if f'"{k}"' in out]
    assert keys == ["人物", "地理位置", "组织机构"]
    assert "lamina chat" in out  # what to run next
    assert (cwd / DEMO_DIR / "checkpoints").is_dir()  # --keep


def test_readme_examples_run_on_demo_model(demo_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    cwd, proc = demo_run
    assert proc.returncode == 0
    examples = [(page, line) for page in doc_pages() for line in readme_examples(page)]
    assert len(readme_examples()) >= 4, "README lost its runnable tour"
    assert len(examples) >= 8, "the docs lost their runnable examples"
    # the `lamina` script next to this interpreter, as a user's shell would find it
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "COLUMNS": "120", "PYTHONIOENCODING": "utf-8", "PATH": path}
    failures = []
    for page, line in examples:
        if re.search(r"\blamina serve\b", line):
            continue  # runs until stopped; covered by tests/server
        result = subprocess.run(line, shell=True, cwd=cwd, capture_output=True, text=True, env=env,
                                timeout=300)
        if result.returncode != 0:
            failures.append(f"{page.relative_to(REPO)}: {line}\n"
                            f"  exit {result.returncode}: {result.stderr[-800:]}")
    assert not failures, "documented examples failed:\n" + "\n".join(failures)
