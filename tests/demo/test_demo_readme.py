"""`lamina demo` end to end, and every documented example that runs on the demo model.

The `console` blocks of README.md and docs/*.md are the documentation users copy
from; this test reads them and runs each `$ lamina ...` line that uses the demo
folder, so the docs cannot go stale. The README's lines run first, then each
docs page's in file-name order, all in one folder; a page's examples may use
what its own earlier examples wrote, but not another page's.

What a ```` ```console ```` block prints under a command is compared with what the
command prints (stdout and stderr, in either interleaving): the demo model is
greedy and deterministic, so answers, JSON records, tables and sizes must be
exactly the ones shown. Only what differs from run to run is masked (durations,
rates, progress bars, whether a temporary file went to RAM or disk), and column
padding is ignored, since a wider timing cell widens its column. A block whose
output cannot be reproduced (it depends on the installed versions of other
packages) is fenced ```` ```console illustrative ````: its commands still run, but
only their exit status is checked. Long-running commands (`lamina serve`, `lamina ui`) are
skipped: the server has its own tests. docs/DEVELOPING.md states the convention.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
DEMO_DIR = "lamina-demo"
#: The width the docs' tables were rendered at (Rich wraps and folds to it).
COLUMNS = "100"

BLOCK = re.compile(r"```console( illustrative)?\n(.*?)```", flags=re.S)
#: Run-to-run values, each replaced by a placeholder before comparing.
VOLATILE = [
    (re.compile(r"\d+(\.\d+)? ?(B|KB|MB|GB)/s"), "<rate>"),
    (re.compile(r"(\d+(\.\d+)?|--) (docs|prompts|tok)/s"), "<rate>"),
    (re.compile(r"\b\d+(\.\d+)? s\b"), "<time>"),
    (re.compile(r"\b(in RAM|on disk)\b"), "<where>"),
]
#: Table characters whose count depends on column widths, and blanks.
PADDING = re.compile(r"[\s─━═]+")
TABLE_CHARS = set("┏┳┓┡╇┩│└┴┘┃┌┬┐├┼┤")


@dataclass
class Example:
    page: Path
    command: str
    output: list[str] = field(default_factory=list)
    illustrative: bool = False

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}: $ {self.command}"


def lamina_cmd() -> list[str]:
    return [sys.executable, "-m", "lamina"]


def doc_pages() -> list[Path]:
    """README.md, then docs/*.md by name."""
    return [README, *sorted(DOCS.glob("*.md"))]


def examples(page: Path = README) -> list[Example]:
    """Each `$ ... lamina ...` line on the demo folder, with the lines shown under it."""
    found: list[Example] = []
    for illustrative, block in BLOCK.findall(page.read_text(encoding="utf-8")):
        current: Example | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = None
                if "lamina" in line and DEMO_DIR in line:
                    current = Example(page, line[2:].strip(), illustrative=bool(illustrative))
                    found.append(current)
            elif current is not None:
                current.output.append(line)
    return found


def is_progress(line: str) -> bool:
    """A Rich progress bar (its final frame), as opposed to a table rule."""
    return "━" in line and not TABLE_CHARS & set(line)


def normal(lines: list[str]) -> list[str]:
    """Lines as compared: no progress bars, no blank lines, volatile values masked,
    column padding removed."""
    out = []
    for line in lines:
        if is_progress(line) or not line.strip():
            continue
        for pattern, mask in VOLATILE:
            line = pattern.sub(mask, line)
        out.append(PADDING.sub("", line))
    return out


def interleaves(shown: list[str], stdout: list[str], stderr: list[str]) -> bool:
    """Whether ``shown`` is ``stdout`` and ``stderr`` merged, each in its own order
    (a terminal shows both streams; which comes first depends on the command)."""
    i = j = 0
    for line in shown:
        if i < len(stdout) and stdout[i] == line:
            i += 1
        elif j < len(stderr) and stderr[j] == line:
            j += 1
        else:
            return False
    return i == len(stdout) and j == len(stderr)


def test_output_comparison_catches_a_changed_answer_and_masks_timings() -> None:
    shown = ["{\"output\": \"北京是中国的首都。\"}",
             "  Generating ━━━━━━━━━━━━━━━━━ 2/2 230.40 prompts/s 0:00:00 0:00:00",
             "4 docs in 5.8 s (0.69 docs/s); wrote out.jsonl",
             "│ Time        │    │ 0.5 s  │"]
    stdout = ["{\"output\": \"北京是中国的首都。\"}", "│ Time    │   │ 12.5 s │"]
    stderr = ["  Generating ━━━━━━━━━━━━━━━━━ 2/2 0.33 prompts/s 0:00:05 0:00:00",
              "4 docs in 1.5 s (2.63 docs/s); wrote out.jsonl"]
    assert interleaves(normal(shown), normal(stdout), normal(stderr))
    changed = [stdout[0].replace("中国", "日本"), stdout[1]]
    assert not interleaves(normal(shown), normal(changed), normal(stderr))
    assert not interleaves(normal(shown), normal(stdout), [])  # a missing line counts


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
    runnable = [e for page in doc_pages() for e in examples(page)]
    assert len(examples()) >= 4, "README lost its runnable tour"
    assert len(runnable) >= 8, "the docs lost their runnable examples"
    compared = [e for e in runnable if not e.illustrative and e.output]
    assert len(compared) >= 10, "the docs lost the outputs this test checks"
    # the `lamina` script next to this interpreter, as a user's shell would find it
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "COLUMNS": COLUMNS, "PYTHONIOENCODING": "utf-8", "PATH": path}
    failures = []
    for example in runnable:
        if re.search(r"\blamina (serve|ui)\b", example.command):
            continue  # runs until stopped; covered by tests/server
        result = subprocess.run(example.command, shell=True, cwd=cwd, capture_output=True,
                                text=True, env=env, timeout=300)
        if result.returncode != 0:
            failures.append(f"{example}\n  exit {result.returncode}: {result.stderr[-800:]}")
        elif not example.illustrative and not interleaves(
                normal(example.output), normal(result.stdout.splitlines()),
                normal(result.stderr.splitlines())):
            failures.append(f"{example}\n  the docs show:\n" + "\n".join(example.output)
                            + "\n  it printed:\n" + result.stdout + result.stderr)
    assert not failures, "documented examples failed or printed something else:\n" \
        + "\n".join(failures)
