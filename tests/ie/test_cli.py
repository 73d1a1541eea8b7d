"""``lamina extract`` / ``lamina eval`` end to end: inputs, errors, resume, tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.ie.io import BadLine, DoneIndex, ResumableJsonl, read_inputs

SCHEMA = '["人物","地理位置"]'
SMALL_ARGS = ["--max-items", "2", "--max-chars", "3", "--max-tokens", "200", "--threads", "1"]


def lamina(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def test_read_inputs_plain_jsonl_iepile_and_bad_lines(tmp_path: Path):
    plain = tmp_path / "docs.txt"
    plain.write_text("第一篇\n\n第二篇\n", encoding="utf-8")
    assert list(read_inputs(plain)) == [{"id": "1", "kind": "text", "text": "第一篇"},
                                        {"id": "3", "kind": "text", "text": "第二篇"}]
    js = tmp_path / "docs.jsonl"
    js.write_text("\n".join([
        '{"id": "a", "text": "甲"}', '{"input": "乙"}', "{broken", "[1, 2]", '{"id": "x"}',
        '{"text": "  "}',
        json.dumps({"id": "h", "instruction": '{"instruction": "i", "schema": ["人物"], '
                    '"input": "丙"}', "label": "[]"}),
    ]), encoding="utf-8")
    items = list(read_inputs(js))
    assert items[0] == {"id": "a", "kind": "text", "text": "甲"}
    assert items[1] == {"id": "2", "kind": "text", "text": "乙"}
    bad = [i for i in items if isinstance(i, BadLine)]
    assert [b.line for b in bad] == [3, 4, 5, 6]
    assert "not valid JSON" in bad[0].reason and "no 'text'" in bad[2].reason
    assert items[-1]["id"] == "h" and "instruction" in items[-1]


def test_resumable_writer_drops_a_torn_last_line(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    w = ResumableJsonl(out).start()
    w.write({"id": "1"})
    w.write({"id": "1"})
    w.close()
    with w.part.open("a") as fh:
        fh.write('{"id": "2", "outp')  # killed mid-write
    again = ResumableJsonl(out).start(resume=True)
    assert again.existing == [{"id": "1"}, {"id": "1"}]
    done = DoneIndex(again.existing)
    assert [done.skip("1"), done.skip("1"), done.skip("1"), done.skip("2")] == [True, True, False, False]
    again.write({"id": "2"})
    again.finish()
    assert out.read_text().splitlines() == ['{"id": "1"}', '{"id": "1"}', '{"id": "2"}']
    assert not again.part.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--schema", '"人物"', "文本"], "must be a JSON list"),
    (["--schema", "[人物", "文本"], "not valid JSON"),
    (["--task", "POS", "--schema", SCHEMA, "文本"], "Unknown extraction task 'POS'"),
    (["--schema", SCHEMA], "Give either a TEXT argument or --input"),
    (["文本"], "No --schema given"),
])
def test_extract_bad_input_is_one_clear_error(chat_gguf, args, message):
    proc = lamina("extract", str(chat_gguf), *args)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_extract_empty_input_file(chat_gguf, tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    proc = lamina("extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(empty))
    assert proc.returncode == 1 and "holds no documents" in proc.stderr


def test_extract_file_writes_records_and_errors_file(chat_gguf, tmp_path: Path):
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join([
        '{"id": "d1", "text": "康有为是广东人。", "source": "demo"}',
        "{not json",
        '{"id": "d2", "text": "梁启超生于新会。"}',
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = lamina("extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(src), "-o", str(out),
                  *SMALL_ARGS)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in recs] == ["d1", "d2"]
    assert recs[0]["input"] == "康有为是广东人。" and recs[0]["source"] == "demo"
    for r in recs:
        assert list(json.loads(r["output"])) == ["人物", "地理位置"] == list(r["result"])
    errors = [json.loads(x) for x in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert errors[0]["line"] == 2 and "not valid JSON" in errors[0]["error"]
    assert "1 bad input lines" in proc.stderr
    again = lamina("extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(src), "-o", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr


def write_docs(path: Path, n: int) -> Path:
    """``n`` one-line news documents (id = line number)."""
    path.write_text("".join(f"第{i}篇：郭碧婷于{i % 28 + 1}日在北京宣布订婚。\n" for i in range(n)),
                    encoding="utf-8")
    return path


#: Runs ``lamina`` (argv[2:]) and SIGKILLs the process itself while it writes the record
#: after the first int(argv[1]) ones of the output: that record's line is left half
#: written, as a kill at a random moment could leave it. The kill is tied to the write,
#: not to a clock, so the test is the same on a busy machine.
KILL_WHILE_WRITING = """
import os, signal, sys
from lamina.cli import main
from lamina.ie.io import ResumableJsonl

after = int(sys.argv[1])
write = ResumableJsonl.write

def write_then_die(self, record):
    if self.path.name.endswith(".errors.jsonl") or self.count < after:
        return write(self, record)
    self._fh.write('{"id": "torn", "outp')
    self._fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)

ResumableJsonl.write = write_then_die
main(sys.argv[2:])
"""


def test_resume_after_kill_gives_the_same_file_as_an_uninterrupted_run(chat_gguf, tmp_path: Path):
    src = write_docs(tmp_path / "docs.txt", 24)
    # A small batch, so records reach the file group by group.
    args = ["extract", str(chat_gguf), "--schema", SCHEMA, "-i", str(src), *SMALL_ARGS,
            "--batch", "2"]
    full = tmp_path / "full.jsonl"
    assert lamina(*args, "-o", str(full)).returncode == 0
    expected = full.read_text(encoding="utf-8")
    assert len(expected.splitlines()) == 24

    out = tmp_path / "resumed.jsonl"
    part = out.with_name(out.name + ".part")
    killed = subprocess.run([sys.executable, "-c", KILL_WHILE_WRITING, "5", *args, "-o", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()
    lines = part.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 6 and lines[-1] == '{"id": "torn", "outp'  # 5 records + a torn one

    resumed = lamina(*args, "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "5 already done" in resumed.stderr
    assert out.read_text(encoding="utf-8") == expected
    assert not part.exists()


def _gold_and_pred(tmp_path: Path) -> tuple[Path, Path]:
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "1", "source": "A", "label": json.dumps([{"entity": "康有为", "entity_type": "人物"}],
                                                       ensure_ascii=False)},
        {"id": "2", "source": "B", "label": [{"entity": "北京", "entity_type": "地点"},
                                              {"entity": "上海", "entity_type": "地点"}]},
    ]) + "\n", encoding="utf-8")
    pred = tmp_path / "pred.jsonl"
    pred.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "1", "output": '{"人物": ["康有为"], "地点": []}'},
        {"id": "2", "output": '{"人物": [], "地点": ["北京", "广州"]}'},
    ]) + "\n", encoding="utf-8")
    return gold, pred


def test_eval_table_and_json(tmp_path: Path):
    gold, pred = _gold_and_pred(tmp_path)
    proc = lamina("eval", "--pred", str(pred), "--gold", str(gold), "--task", "NER", "--json",
                  "--sort-by", "source")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    ent = report["f1"]["levels"]["entity"]
    assert (ent["tp"], ent["pred"], ent["gold"]) == (2, 3, 3)  # P = R = F1 = 66.67
    assert ent["F1"] == 66.67
    assert report["f1"]["by_source"]["A"]["levels"]["entity"]["F1"] == 100.0
    table = lamina("eval", "--pred", str(pred), "--gold", str(gold), "--task", "NER")
    assert table.returncode == 0 and "66.67" in table.stdout and "all (micro)" in table.stdout


def test_eval_table_shows_type_names_as_written(tmp_path: Path):
    """Type names come from the user's data: '[/x]' is a name, not Rich markup."""
    gold, pred = _gold_and_pred(tmp_path)
    for f in (gold, pred):
        f.write_text(f.read_text(encoding="utf-8").replace("地点", "[/地点]"), encoding="utf-8")
    table = lamina("eval", "--pred", str(pred), "--gold", str(gold), "--task", "NER")
    assert table.returncode == 0, table.stderr
    assert "[/地点]" in table.stdout


def test_eval_errors_are_clear(tmp_path: Path):
    gold, pred = _gold_and_pred(tmp_path)
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "99", "output": "{}"}\n', encoding="utf-8")
    proc = lamina("eval", "--pred", str(other), "--gold", str(gold), "--task", "NER")
    assert proc.returncode == 1 and "not in the gold file" in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1", "output": "{}"}\n{oops\n', encoding="utf-8")
    proc = lamina("eval", "--pred", str(broken), "--gold", str(gold))
    assert proc.returncode == 1 and "broken.jsonl:2 is not valid JSON" in proc.stderr
    proc = lamina("eval", "--pred", str(pred))
    assert proc.returncode == 1 and "no gold label" in proc.stderr
    proc = lamina("eval", "--pred", str(pred), "--gold", str(gold), "--metrics", "f2")
    assert proc.returncode == 1 and "Unknown metric" in proc.stderr


def test_eval_pairs_rouge_bleu(tmp_path: Path):
    pytest.importorskip("jieba")
    pred = tmp_path / "p.jsonl"
    pred.write_text('{"id": "1", "output": "安装动作_安装&操作部件1_螺栓"}\n', encoding="utf-8")
    gold = tmp_path / "g.jsonl"
    gold.write_text('{"id": "1", "output": "安装动作_安装&操作部件1_螺栓"}\n', encoding="utf-8")
    proc = lamina("eval", "--pred", str(pred), "--gold", str(gold), "--format", "pairs",
                  "--metrics", "f1,rouge,bleu", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["f1"]["levels"]["entity"]["F1"] == 100.0
    assert report["text"]["rouge-l"] == 100.0 and report["text"]["bleu-4"] == 100.0


def test_iepile_test_file_flows_through_extract_and_eval(ie_model, tmp_path: Path):
    """DeepKE test files hold one line per schema chunk with the same id; the
    instruction is used as is, the label travels along, eval pools the chunks."""
    from lamina.ie.api import extract_many
    from lamina.ie.evaluate import evaluate_files
    from lamina.ie.instructions import build_instruction
    from tests.ie.conftest import SMALL

    text = "郭碧婷与向佐在台北订婚。"
    label = json.dumps([{"entity": "郭碧婷", "entity_type": "人物"}], ensure_ascii=False)
    src = tmp_path / "test.json"
    src.write_text("".join(json.dumps({"id": "h1", "instruction": build_instruction(
        "NER", chunk, text), "label": label}, ensure_ascii=False) + "\n"
        for chunk in (["人物", "地点"], ["组织"])), encoding="utf-8")
    items = list(read_inputs(src))
    recs = list(extract_many(ie_model, items, task="NER", limits=SMALL))
    assert [r["id"] for r in recs] == ["h1", "h1"]
    assert [list(r["result"]) for r in recs] == [["人物", "地点"], ["组织"]]
    assert all(r["input"] == text and r["label"] == label for r in recs)
    out = tmp_path / "pred.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    report = evaluate_files(out, task="NER")
    assert report["f1"]["records"] == 1 and report["f1"]["levels"]["entity"]["gold"] == 1
