"""One document's length, failure or cut never touches another's record; records
reach the file as documents finish; finish_reason and truncation are recorded."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ie.test_cli import SCHEMA, SMALL_ARGS, lamina, write_docs

DOCS = [f"第{i}篇：郭碧婷于{i % 28 + 1}日在北京宣布订婚。" for i in range(5)]
LONG = "康有为是广东南海人，1895年在北京参加会试，与梁启超等人发起公车上书。" * 60


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items),
                    encoding="utf-8")
    return path


def test_a_long_document_is_cut_to_fit_and_the_others_are_untouched(chat_gguf, tmp_path: Path):
    docs = DOCS[:2] + [LONG] + DOCS[2:]
    src = _write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(docs)])
    alone = _write_jsonl(tmp_path / "short.jsonl",
                         [{"id": str(i), "text": t} for i, t in enumerate(docs) if t != LONG])
    base = ["extract", str(chat_gguf), "--schema", SCHEMA, *SMALL_ARGS, "--ctx", "512"]
    ref = tmp_path / "ref.jsonl"
    assert lamina(*base, "-i", str(alone), "-o", str(ref), "--batch", "1").returncode == 0
    for batch in ("1", "4"):
        out = tmp_path / f"b{batch}.jsonl"
        run = lamina(*base, "-i", str(src), "-o", str(out), "--batch", batch)
        assert run.returncode == 0, run.stderr
        recs = _records(out)
        assert [r["id"] for r in recs] == [str(i) for i in range(6)]  # input order
        long = recs[2]
        assert "error" not in long, long
        cut = long["truncated"]
        assert cut["input_chars"] == len(LONG) and 0 < cut["kept_chars"] < len(LONG)
        assert cut["prompt_tokens"] > cut["max_input_tokens"] == 512 - 200
        assert long["input"] == LONG[: cut["kept_chars"]]
        others = [r for r in recs if r["id"] != "2"]
        assert [r["output"] for r in others] == [r["output"] for r in _records(ref)]
        assert all("error" not in r and "truncated" not in r for r in others)


def test_a_document_that_cannot_fit_fails_alone_and_resume_retries_it(chat_gguf,
                                                                      tmp_path: Path):
    huge_schema = [f"类型{i}" for i in range(300)]
    bad = {"id": "bad", "instruction": json.dumps(
        {"instruction": "抽取实体", "schema": huge_schema, "input": "郭碧婷"}, ensure_ascii=False)}
    items = [{"id": str(i), "text": t} for i, t in enumerate(DOCS)]
    src = _write_jsonl(tmp_path / "in.jsonl", items[:2] + [bad] + items[2:])
    out = tmp_path / "out.jsonl"
    args = ["extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(src), "-o", str(out),
            *SMALL_ARGS, "--ctx", "512", "--batch", "4"]
    run = lamina(*args)
    assert run.returncode == 0, run.stderr
    recs = _records(out)
    assert [r["id"] for r in recs] == ["0", "1", "bad", "2", "3", "4"]
    failed = [r for r in recs if "error" in r]
    assert [r["id"] for r in failed] == ["bad"]
    assert "fit" in failed[0]["error"] and failed[0]["finish_reason"] == "error"
    assert "1 failed" in run.stderr

    kept = lamina(*args, "--resume", "--keep-failed")
    assert kept.returncode == 0 and "6 already done" in kept.stderr, kept.stderr
    assert _records(out) == recs
    retried = lamina(*args, "--resume")
    assert retried.returncode == 0, retried.stderr
    assert "5 already done" in retried.stderr and "1 failed before, tried again" in retried.stderr
    again = _records(out)
    assert [r["id"] for r in again] == ["0", "1", "bad", "2", "3", "4"]  # no duplicate
    assert again[:2] == recs[:2] and again[3:] == recs[3:]
    assert lamina(*args, "--keep-failed").returncode != 0  # --keep-failed needs --resume


def test_records_come_out_as_documents_finish(ie_model):
    """24 documents on the engine in one call: the first record must come out while
    most of the others are still being decoded, not after the whole group."""
    from lamina.ie.api import extract_iter
    from lamina.runtime.engine import cached_engine
    from lamina.runtime.sampling import SamplingParams

    docs = [f"第{i}篇：郭碧婷于{i % 28 + 1}日在北京宣布订婚。" + "会后接受采访。" * (i % 5)
            for i in range(24)]
    seen = []
    for index, rec in extract_iter(ie_model, docs, batch=4, schema=json.loads(SCHEMA),
                                   params=SamplingParams.greedy(max_tokens=200)):
        assert "error" not in rec, rec
        seen.append((index, cached_engine(ie_model).stats()["requests_finished"]))
    assert sorted(i for i, _ in seen) == list(range(24))
    first_at = seen[0][1]
    assert first_at < 24 - 4, seen  # yielded long before the last documents were done


def test_ctrl_c_keeps_the_finished_records_and_resume_completes_them(chat_gguf,
                                                                     tmp_path: Path):
    src = write_docs(tmp_path / "docs.txt", 800)
    args = ["extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(src), *SMALL_ARGS,
            "--batch", "16"]
    full = tmp_path / "full.jsonl"
    assert lamina(*args, "-o", str(full)).returncode == 0
    out = tmp_path / "out.jsonl"
    part = out.with_name(out.name + ".part")
    proc = subprocess.Popen([sys.executable, "-m", "lamina", *args, "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and part.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert not out.exists(), "the run finished before it could be interrupted"
    written = part.read_bytes().count(b"\n")
    assert 1 <= written < 800
    assert "--resume" in err and "Traceback" not in err
    resumed = lamina(*args, "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} already done" in resumed.stderr
    assert out.read_text(encoding="utf-8") == full.read_text(encoding="utf-8")


def test_finish_reason_length_is_recorded_in_batch_mode(chat_gguf, tmp_path: Path):
    src = _write_jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(DOCS)])
    for batch in ("1", "4"):
        out = tmp_path / f"b{batch}.jsonl"
        run = lamina("extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(src), "-o", str(out),
                     "--max-tokens", "3", "--threads", "1", "--batch", batch)
        assert run.returncode == 0, run.stderr
        recs = _records(out)
        assert {r["finish_reason"] for r in recs} == {"length"}
        assert all("cut off at max_tokens" in r["error"] for r in recs)
        assert "5 answers hit --max-tokens" in run.stderr
    done = lamina("extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(src),
                  "-o", str(tmp_path / "ok.jsonl"), *SMALL_ARGS, "--batch", "4")
    assert {r["finish_reason"] for r in _records(tmp_path / "ok.jsonl")} == {"stop"}, done.stderr
