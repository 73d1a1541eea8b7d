"""``lamina generate`` on data files: --batch on the native engine gives the answers of
one prompt at a time, with the progress bar, the errors file and --resume of extract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.ie.generation import generate_iter, run_generate
from lamina.ie.inputs import read_records
from lamina.ie.io import JsonlRun
from lamina.runtime.sampling import SamplingParams
from tests.ie.test_inputs import SEED0_RECORDS, seed0_file

native = pytest.importorskip("lamina.runtime.engine")
needs_engine = pytest.mark.skipif(not native.native_available(),
                                  reason="the native engine is not built")

PROMPTS = ["介绍一下北京", "翻译：hello", "写一首诗", "上海是哪里", "你好", "一加一等于几",
           "鲁迅是谁", "讲个笑话"]


def prompt_file(path: Path) -> Path:
    rows = [{"id": f"p{i}", "instruction": p} for i, p in enumerate(PROMPTS)]
    rows += [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]}
             for r in SEED0_RECORDS]
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def items_of(path: Path) -> list[dict]:
    return list(read_records(path, need="prompt"))


@needs_engine
@pytest.mark.parametrize("no_template", [False, True])
def test_batch_answers_equal_one_at_a_time(ie_model, tmp_path: Path, no_template: bool):
    items = items_of(prompt_file(tmp_path / "prompts.json"))
    params = SamplingParams.greedy(max_tokens=24)
    one = dict(generate_iter(ie_model, items, params, batch=1, no_template=no_template))
    many = dict(generate_iter(ie_model, items, params, batch=4, no_template=no_template))
    assert sorted(many) == list(range(len(items)))
    for i in range(len(items)):
        assert many[i]["output"] == one[i]["output"], items[i]["id"]
        assert many[i]["finish_reason"] == one[i]["finish_reason"]
        assert many[i]["completion_tokens"] == one[i]["completion_tokens"]
    # the gold of seed 000's records travels along, for lamina eval
    assert [one[i].get("label") for i in range(len(PROMPTS), len(items))] == \
        [r["output"] for r in SEED0_RECORDS]


def lamina(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


@needs_engine
def test_cli_batch_file_matches_sequential_and_resumes(chat_gguf, ie_model, tmp_path: Path):
    src = prompt_file(tmp_path / "prompts.json")
    args = ["generate", str(chat_gguf), "-i", str(src), "--temp", "0", "-n", "16", "--threads",
            "1", "--ctx", "1024"]
    seq, bat = tmp_path / "seq.jsonl", tmp_path / "bat.jsonl"
    assert lamina(*args, "-o", str(seq)).returncode == 0
    proc = lamina(*args, "-o", str(bat), "--batch", "4")
    assert proc.returncode == 0, proc.stderr
    assert bat.read_text(encoding="utf-8") == seq.read_text(encoding="utf-8")
    assert "Wrote 11 predictions" in proc.stderr
    # interrupted after 4 records (as Ctrl-C would): .part holds them, --resume finishes
    out = tmp_path / "resumed.jsonl"
    run = JsonlRun(items_of(src), out)

    def stop_after_four(done: int, total: int) -> None:
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_generate(ie_model, run, ie_model.default_params.replace(temperature=0.0,
                                                                    max_tokens=16),
                     batch=4, on_progress=stop_after_four)  # what --temp 0 -n 16 asks
    assert not out.exists() and len(Path(f"{out}.part").read_text().splitlines()) == 4
    again = lamina(*args, "-o", str(out), "--batch", "4", "--resume")
    assert again.returncode == 0, again.stderr
    assert "4 already done" in again.stderr
    assert out.read_text(encoding="utf-8") == seq.read_text(encoding="utf-8")


def test_generate_predictions_score_with_seed000_metrics(chat_gguf, tmp_path: Path):
    pytest.importorskip("jieba")
    src = seed0_file(tmp_path / "dev.json")
    out = tmp_path / "pred.jsonl"
    proc = lamina("generate", str(chat_gguf), "-i", str(src), "-o", str(out), "--temp", "0",
                  "-n", "8", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    res = lamina("eval", "--pred", str(out), "--metrics", "rouge,bleu", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["text"]["records"] == len(SEED0_RECORDS)
