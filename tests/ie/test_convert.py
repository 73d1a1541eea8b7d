"""``lamina ie convert``: DeepKE's raw annotation shapes -> IEPile train/test files.

The annotations are built here in the shapes seed 002 describes (sample.json per
task, InstructIE); expectations come from the seed's documented rules and
examples, and the round trip (test file -> gold answers written by this test ->
``lamina eval``) must score 100.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lamina.ie.convert import ConvertOptions, chunk_output, convert_file
from lamina.ie.evaluate import evaluate_files
from lamina.ie.tasks import DESCRIPTIONS

NER_TYPES = ["人物", "地理位置", "组织机构"]
NER = [
    {"text": "对于康有为、梁启超、谭嗣同、严复这些从旧文化营垒中走来的年轻“布衣”，实在是中华民族的脊梁。",
     "entity": [{"entity": "严复", "entity_type": "人物"}, {"entity": "康有为", "entity_type": "人物"},
                {"entity": "中华", "entity_type": "地理位置"}, {"entity": "梁启超", "entity_type": "人物"},
                {"entity": "谭嗣同", "entity_type": "人物"}, {"entity": "康有为", "entity_type": "人物"}]},
    {"text": "相比之下，青岛海牛队和广州松日队的雨中之战虽然也是0∶0，但乏善可陈。",
     "entity": [{"entity": "广州松日队", "entity_type": "组织机构"},
                {"entity": "青岛海牛队", "entity_type": "组织机构"}]},
    {"text": "当前国有大中型企业改制中存在的问题。", "entity": []},
]
RE = [  # InstructIE's record shape (head/tail types, cate); RE reads head/relation/tail
    {"id": "bac7", "cate": "地理地区", "text": "阿尔夫达尔是挪威的一个市镇，位于内陆郡，面积为943平方公里。",
     "relation": [{"head": "阿尔夫达尔", "head_type": "地理地区", "relation": "面积",
                   "tail": "943平方公里", "tail_type": "度量"},
                  {"head": "阿尔夫达尔", "head_type": "地理地区", "relation": "位于",
                   "tail": "内陆郡", "tail_type": "地理地区"},
                  {"head": "内陆郡", "head_type": "地理地区", "relation": "位于",
                   "tail": "挪威", "tail_type": "地理地区"}]},
    {"text": "《你的名字》是新海诚的作品。",
     "relation": [{"head": "你的名字", "relation": "作者", "tail": "新海诚"}]},
]
RELATIONS = ["作者", "国籍", "位于", "面积", "毕业院校"]
EVENTS = [
    {"text": "郭碧婷订婚后，有谁注意向佐说了什么？",
     "event": [{"event_trigger": "订婚", "event_type": "人生-订婚",
                "arguments": [{"argument": "向佐", "role": "订婚主体"},
                              {"argument": "郭碧婷", "role": "订婚主体"}]}]},
    {"text": "5月份在华裁员900余人，香饽饽变“臭”了",
     "event": [{"event_trigger": "裁员", "event_type": "组织关系-裁员",
                "arguments": [{"argument": "900余人", "role": "裁员人数"},
                              {"argument": "5月份", "role": "时间"}]}]},
]
EVENT_ROLES = {"人生-订婚": ["订婚主体", "时间"], "组织关系-裁员": ["裁员方", "裁员人数", "时间"],
               "人生-求婚": ["求婚对象"], "人生-失联": ["地点", "失联者"], "灾害/意外-坍/垮塌": ["受伤人数"]}
KG = [{"id": 1000267, "text": "嘉永五年11月3日，明治天皇出生，是孝明天皇的第二位皇子。母亲是英照皇太后。赐名睦仁。",
       "relation": [{"head": "明治天皇", "relation": "别名", "tail": "睦仁"},
                    {"head": "明治天皇", "relation": "父母", "tail": "孝明天皇"},
                    {"head": "明治天皇", "relation": "父母", "tail": "英照皇太后"},
                    {"head": "孝明天皇", "relation": "配偶", "tail": "英照皇太后"}]}]
KG_ATTRS = ["别名", "出生日期", "父母", "配偶"]


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def schema_file(path: Path, types=(), roles=(), type_roles=None) -> Path:
    """DeepKE's schema.json: three JSON lines."""
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False)
                              for x in (list(types), list(roles), type_roles or {})) + "\n",
                    encoding="utf-8")
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def convert(tmp_path: Path, name: str, rows, task: str, split: str, schema: Path | None = None,
            **kw):
    folder = tmp_path / name  # DeepKE names the source after the input's folder
    folder.mkdir()
    src = jsonl(folder / "sample.json", rows)
    out = folder / f"{split}.json"
    report = convert_file(src, out, ConvertOptions(task=task, split=split, **kw),
                          schema_path=schema)
    return report, read(out)


def instr(rec: dict) -> dict:
    return json.loads(rec["instruction"])


def test_ner_test_file_has_every_type_chunked_with_label_and_stable_id(tmp_path: Path):
    types = [f"类型{i}" for i in range(9)]  # 9 with split_num 6: chunks of 6 and 3
    schema = schema_file(tmp_path / "schema.json", types)
    report, rows = convert(tmp_path, "NER", NER, "NER", "test", schema)
    assert report["written"] == len(rows) == 3 * 2 and report["source"] == "NER"
    first = rows[:2]
    assert [instr(r)["schema"] for r in first] == [types[:6], types[6:]]
    text = NER[0]["text"]
    assert all(r["id"] == hashlib.sha256(text.encode("utf-8")).hexdigest() for r in first)
    assert first[0]["instruction"] == json.dumps(
        {"instruction": DESCRIPTIONS[("NER", "zh")], "schema": types[:6], "input": text},
        ensure_ascii=False)
    label = json.loads(first[0]["label"])  # the duplicate 康有为 is dropped, as DeepKE does
    assert [a["entity"] for a in label] == ["严复", "康有为", "中华", "梁启超", "谭嗣同"]
    assert set(first[0]) == {"id", "task", "source", "instruction", "label"}
    # 7 types: the tail of 1 (< 6 // 2) joins the first chunk
    _, seven = convert(tmp_path, "NER7", NER[:1], "NER", "test",
                       schema_file(tmp_path / "s7.json", types[:7]))
    assert [len(instr(r)["schema"]) for r in seven] == [7]
    # no annotation field at all: a test record without label
    _, bare = convert(tmp_path, "bare", [{"text": "没有标注的句子。"}], "NER", "test",
                      schema_file(tmp_path / "s3.json", NER_TYPES))
    assert len(bare) == 1 and "label" not in bare[0]


def test_train_output_matches_the_seeds_documented_answers():
    # seed 002's NER example: schema order kept, entities in text order
    text = NER[0]["text"]
    assert chunk_output("NER", text, ["组织机构", "地理位置", "人物"], NER[0]["entity"]) == {
        "组织机构": [], "地理位置": ["中华"], "人物": ["康有为", "梁启超", "谭嗣同", "严复"]}
    # RE in IEPile's published subject/object form
    assert chunk_output("RE", RE[1]["text"], ["国籍", "作者", "毕业院校", "主角"], RE[1]["relation"]) == {
        "国籍": [], "作者": [{"subject": "你的名字", "object": "新海诚"}], "毕业院校": [], "主角": []}
    # EE: absent argument NAN, several values a list (in text order), other types empty
    schema = [{"event_type": t, "trigger": True, "arguments": EVENT_ROLES[t]}
              for t in ("人生-求婚", "人生-订婚", "灾害/意外-坍/垮塌", "人生-失联")]
    assert chunk_output("EE", EVENTS[0]["text"], schema, EVENTS[0]["event"]) == {
        "人生-求婚": [], "人生-订婚": [{"trigger": "订婚", "arguments": {
            "订婚主体": ["郭碧婷", "向佐"], "时间": "NAN"}}], "灾害/意外-坍/垮塌": [], "人生-失联": []}
    # KG: entities in text order, one value a string, several a list, no attribute: {}
    kg = chunk_output("KG", KG[0]["text"], [{"entity_type": "人物", "attributes": ["别名", "父母"]}],
                      KG[0]["relation"])
    assert kg == {"人物": {"明治天皇": {"别名": "睦仁", "父母": ["孝明天皇", "英照皇太后"]},
                         "孝明天皇": {}}}


def test_train_split_num_random_sort_and_negatives(tmp_path: Path):
    types = [f"t{i}" for i in range(10)] + ["人物", "地理位置", "组织机构"]
    schema = schema_file(tmp_path / "schema.json", types)
    _, rows = convert(tmp_path, "sorted", NER[:1], "NER", "train", schema)
    asked = [k for r in rows for k in instr(r)["schema"]]
    assert asked == sorted(types)  # all negatives kept (ratio 1), documented order = sorted
    assert [len(instr(r)["schema"]) for r in rows] == [6, 7]  # 13 = 6 + 6 + 1 folded
    for r in rows:
        out = json.loads(r["output"])
        assert list(out) == instr(r)["schema"] and set(r) == {"task", "source", "instruction",
                                                             "output"}
    _, shuffled = convert(tmp_path, "shuffled", NER[:1], "NER", "train", schema,
                          random_sort=True, seed=3)
    order = [k for r in shuffled for k in instr(r)["schema"]]
    assert sorted(order) == sorted(types) and order != sorted(types)
    _, again = convert(tmp_path, "again", NER[:1], "NER", "train", schema, random_sort=True,
                       seed=3)
    assert [(r["instruction"], r["output"]) for r in again] == \
        [(r["instruction"], r["output"]) for r in shuffled]  # the seed makes it reproducible
    # ratio 0: the record's own types only; a record without any gives nothing
    report, pos = convert(tmp_path, "pos", NER, "NER", "train", schema, neg_ratio=0)
    assert [instr(r)["schema"] for r in pos] == [["人物", "地理位置"], ["组织机构"]]
    assert len(report["skipped"]) == 1
    # a small ratio keeps the positives and only some negatives
    _, few = convert(tmp_path, "few", NER[:1], "NER", "train", schema, neg_ratio=0.2, seed=1)
    kept = [k for r in few for k in instr(r)["schema"]]
    assert {"人物", "地理位置"} <= set(kept) and len(kept) < len(types)


def test_hard_negatives_ask_each_positives_confusable_types(tmp_path: Path):
    types = ["人物", "地理位置", "组织机构"] + [f"t{i}" for i in range(8)]
    schema = schema_file(tmp_path / "schema.json", types)
    _, rows = convert(tmp_path, "hard", NER[1:2], "NER", "train", schema, split_num=4,
                      hard_negatives={"组织机构": ["地理位置"]})
    asked = [k for r in rows for k in instr(r)["schema"]]
    # the positive, its hard negative, and split_num (4) random others
    assert {"组织机构", "地理位置"} <= set(asked) and len(asked) == len(set(asked)) == 2 + 4


def gold_answer(task: str, rec: dict) -> str:
    """The perfect answer to one test instruction, written from the seed's answer
    shapes and the record's label (independently of lamina's converter)."""
    schema = instr(rec)["schema"]
    label = json.loads(rec["label"])
    if task == "NER":
        return json.dumps({t: [a["entity"] for a in label if a["entity_type"] == t]
                           for t in schema}, ensure_ascii=False)
    if task == "RE":
        return json.dumps({r: [{"subject": a["head"], "object": a["tail"]} for a in label
                               if a["relation"] == r] for r in schema}, ensure_ascii=False)
    if task == "EET":
        return json.dumps({t: [a["event_trigger"] for a in label if a["event_type"] == t]
                           for t in schema}, ensure_ascii=False)
    if task in ("EE", "EEA"):
        out = {}
        for item in schema:
            events = []
            for a in label:
                if a["event_type"] != item["event_type"]:
                    continue
                args: dict = {}
                for arg in a["arguments"]:
                    args.setdefault(arg["role"], []).append(arg["argument"])
                args = {k: v[0] if len(v) == 1 else v for k, v in args.items()}
                events.append({"trigger": a["event_trigger"], "arguments": args}
                              if task == "EE" else {"arguments": args})
            out[item["event_type"]] = events
        return json.dumps(out, ensure_ascii=False)
    out = {}  # KG
    for item in schema:
        heads: dict = {}
        for a in label:
            if a["relation"] in item["attributes"]:
                heads.setdefault(a["head"], {}).setdefault(a["relation"], []).append(a["tail"])
        out[item["entity_type"]] = {h: {k: v[0] if len(v) == 1 else v for k, v in attrs.items()}
                                    for h, attrs in heads.items()}
    return json.dumps(out, ensure_ascii=False)


@pytest.mark.parametrize(("task", "rows", "schema_lines", "fixes", "levels"), [
    ("NER", NER, (NER_TYPES,), (), ("entity",)),
    ("RE", RE, ([], RELATIONS), ("re-subject-object",), ("relation",)),
    ("EET", EVENTS, (list(EVENT_ROLES),), (), ("trigger",)),
    ("EE", EVENTS, (list(EVENT_ROLES), [], EVENT_ROLES), (), ("event", "argument")),
    ("EEA", EVENTS, (list(EVENT_ROLES), [], EVENT_ROLES), (), ("event", "argument")),
    ("KG", KG, ([], KG_ATTRS, {"人物": KG_ATTRS}), ("kg-triples",), ("attribute",)),
])
def test_round_trip_annotations_to_test_file_to_perfect_answers_scores_100(
        tmp_path: Path, task, rows, schema_lines, fixes, levels):
    schema = schema_file(tmp_path / "schema.json", *schema_lines)
    _, test_rows = convert(tmp_path, task, rows, task, "test", schema, split_num=2)
    assert len({r["id"] for r in test_rows}) == len(rows)
    pred = jsonl(tmp_path / "pred.jsonl", [{**r, "output": gold_answer(task, r)}
                                            for r in test_rows])
    report = evaluate_files(pred, fixes=fixes)  # task and gold from the records themselves
    assert report["task"] == task and report["f1"]["records"] == len(rows)
    for level in levels:
        scores = report["f1"]["levels"][level]
        assert scores["F1"] == 100.0 and scores["gold"] > 0, (level, scores)


def test_cli_convert_then_eval_and_bad_records(tmp_path: Path):
    src = tmp_path / "mine" / "sample.json"
    src.parent.mkdir()
    jsonl(src, [*NER, {"text": "坏记录", "entity": [{"entity": "x"}]}, {"entity": []}])
    out = tmp_path / "test.json"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "lamina", "ie", "convert", str(src), "-o",
                           str(out), "--task", "NER", "--split", "test"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "3 records -> 3 test instructions" in proc.stderr and "2 bad records" in proc.stderr
    errors = read(tmp_path / "test.errors.json")
    assert [e["line"] for e in errors] == [4, 5]
    assert "without 'entity_type'" in errors[0]["error"] and "no 'text'" in errors[1]["error"]
    rows = read(out)
    assert instr(rows[0])["schema"] == ["人物", "地理位置", "组织机构"]  # first seen
    pred = jsonl(tmp_path / "pred.jsonl", [{**r, "output": gold_answer("NER", r)} for r in rows])
    res = subprocess.run([sys.executable, "-m", "lamina", "eval", "--pred", str(pred), "--json"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["f1"]["levels"]["entity"]["F1"] == 100.0
    again = subprocess.run([sys.executable, "-m", "lamina", "ie", "convert", str(src), "-o",
                            str(out), "--task", "NER"], capture_output=True, text=True,
                           timeout=120, env=env)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_convert_errors_are_one_clear_message(tmp_path: Path):
    src = jsonl(tmp_path / "s.json", KG)
    with pytest.raises(Exception, match="KG conversion needs a schema file"):
        convert_file(src, tmp_path / "o.json", ConvertOptions(task="KG"))
    with pytest.raises(Exception, match="Hard negatives .* are for NER, RE, EET, not EE"):
        ConvertOptions(task="EE", hard_negatives={})
    with pytest.raises(Exception, match="between 0 and 1"):
        ConvertOptions(task="NER", neg_ratio=2)
    bad_schema = tmp_path / "bad.json"
    bad_schema.write_text("[1]\n[]\n", encoding="utf-8")
    with pytest.raises(Exception, match="2 JSON lines, not 3"):
        convert_file(src, tmp_path / "o.json", ConvertOptions(task="RE"), schema_path=bad_schema)


def test_users_own_annotations_scored_by_extract_and_eval(chat_gguf, tmp_path: Path):
    """The seed-002 workflow on the command line: convert -> extract -> eval."""
    src = tmp_path / "mine" / "sample.json"
    src.parent.mkdir()
    jsonl(src, NER)
    test_file = tmp_path / "test.json"
    env = {**os.environ, "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True,
                              text=True, timeout=300, env=env)

    assert run("ie", "convert", str(src), "-o", str(test_file), "--task", "NER", "--split",
               "test", "--split-num", "2").returncode == 0
    pred = tmp_path / "pred.jsonl"
    proc = run("extract", str(chat_gguf), "-i", str(test_file), "-o", str(pred), "--max-items",
               "2", "--max-chars", "3", "--max-tokens", "120", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    recs = read(pred)
    assert len(recs) == 3 * 2 and all(r["task"] == "NER" and "label" in r for r in recs)
    res = run("eval", "--pred", str(pred), "--json")
    assert res.returncode == 0, res.stderr
    entity = json.loads(res.stdout)["f1"]["levels"]["entity"]
    assert json.loads(res.stdout)["f1"]["records"] == 3 and entity["gold"] == 7
