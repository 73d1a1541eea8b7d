"""``lamina.ie.job.run_extract``: the job behind ``lamina extract``, called from Python.

The CLI is a thin shell over it, so the file it writes must be byte-identical to
what the command writes; resume, the errors file, progress and interruption are
checked on the library call itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.ie.grammar import GrammarLimits
from lamina.ie.job import ExtractInterrupted, ExtractOptions, run_extract
from tests.ie.test_cli import SCHEMA, SMALL_ARGS, lamina, write_docs

LIMITS = GrammarLimits(max_items=2, max_chars=3)


def _options(model: Path, src: Path, out: Path | None, **kw) -> ExtractOptions:
    return ExtractOptions(model=model, input=src, output=out, schema=json.loads(SCHEMA),
                          limits=LIMITS, max_tokens=200, n_threads=1, batch=4, **kw)


def test_the_library_job_writes_what_the_cli_writes(chat_gguf, tmp_path: Path):
    src = tmp_path / "docs.jsonl"
    lines = write_docs(tmp_path / "docs.txt", 6).read_text(encoding="utf-8").splitlines()
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                           for i, t in enumerate(lines)) + '{"broken json\n', encoding="utf-8")
    cli_out = tmp_path / "cli.jsonl"
    run = lamina("extract", str(chat_gguf), "--schema", SCHEMA, *SMALL_ARGS, "--batch", "4",
                 "-i", str(src), "-o", str(cli_out))
    assert run.returncode == 0, run.stderr

    seen: list[tuple[int, int]] = []
    records: list[dict] = []
    out = tmp_path / "lib.jsonl"
    report = run_extract(_options(chat_gguf, src, out),
                         on_progress=lambda done, total: seen.append((done, total)),
                         on_record=records.append)
    assert out.read_bytes() == cli_out.read_bytes()
    assert (report.written, report.skipped, report.failed) == (6, 0, 0)
    assert [b.line for b in report.bad_lines] == [7]
    assert report.errors_path is not None and report.errors_path.exists()
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and len(seen) == 7
    assert sorted(r["id"] for r in records) == sorted(json.loads(x)["id"]
                                                      for x in out.read_text("utf-8").splitlines())

    again = run_extract(_options(chat_gguf, src, out, resume=True))
    assert (again.written, again.skipped) == (0, 6)
    assert out.read_bytes() == cli_out.read_bytes()


def test_without_an_output_records_come_in_input_order(chat_gguf, tmp_path: Path):
    src = write_docs(tmp_path / "docs.txt", 5)
    records: list[dict] = []
    report = run_extract(_options(chat_gguf, src, None), on_record=records.append)
    assert [r["id"] for r in records] == ["1", "2", "3", "4", "5"]
    assert report.output is None and report.written == 5


def test_ctrl_c_keeps_the_finished_records_for_resume(chat_gguf, tmp_path: Path):
    src = write_docs(tmp_path / "docs.txt", 6)
    out = tmp_path / "out.jsonl"

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(ExtractInterrupted) as stopped:
        run_extract(_options(chat_gguf, src, out), on_progress=stop_after_two)
    assert stopped.value.kept == 2
    assert not out.exists()  # only the .part file, until the run is complete
    resumed = run_extract(_options(chat_gguf, src, out, resume=True))
    assert (resumed.skipped, resumed.written) == (2, 4)
    full = run_extract(_options(chat_gguf, src, tmp_path / "full.jsonl"))
    assert full.written == 6
    assert out.read_bytes() == (tmp_path / "full.jsonl").read_bytes()


def test_bad_options_fail_before_the_model_loads(tmp_path: Path):
    from lamina.errors import InputError

    missing_model = tmp_path / "nope.gguf"
    with pytest.raises(InputError, match="exactly one"):
        run_extract(ExtractOptions(model=missing_model, schema=["人物"]))
    with pytest.raises(InputError, match="--resume needs --output"):
        run_extract(ExtractOptions(model=missing_model, text="文本", schema=["人物"], resume=True))
