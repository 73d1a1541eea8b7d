"""The one input reader, on files in the seeds' own shapes (built here from the
formats the seeds describe), and on broken ones: one clear reason per bad record,
and every record accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.ie.inputs import BadLine, prompt_of, read_records
from lamina.ie.instructions import build_instruction, pair_categories

#: Seed 000's instruction, as its data files carry it (the categories are the seed's).
CATEGORIES = ["安装动作", "操作部件位置1", "方位", "目标部件位置1", "操作程序选项", "一般动作",
              "操作部件位置2", "目标部件2", "物理量", "目标部件位置2", "量词", "工作区域",
              "拆卸动作", "操作程序", "目标部件1", "操作部件2", "操作部件1", "一般工具"]
SEED0_INSTRUCTION = ("你现在是一个命名实体识别模型，请你帮我抽取出命名实体识别类别为"
                     + ",".join(f"'{c}'" for c in CATEGORIES)
                     + "的二元组，二元组内部用'_'连接，二元组之间用'&'分割。")
SEED0_RECORDS = [
    {"instruction": SEED0_INSTRUCTION, "input": "安装a柱左下部饰板注1个夹子，2个导片",
     "output": "安装动作_安装&操作部件1_a柱左下部饰板"},
    {"instruction": SEED0_INSTRUCTION, "input": "要安装新的前备箱储物单元，请安装加固夹。",
     "output": "安装动作_安装&操作部件1_前备箱储物单元&操作部件1_加固夹"},
    {"instruction": SEED0_INSTRUCTION, "input": "拆下将腰部支撑底部固定到座椅靠背框架的螺栓。",
     "output": "拆卸动作_拆下&操作部件1_螺栓"},
]


def seed0_file(path: Path, records=SEED0_RECORDS) -> Path:
    """A JSON array pretty-printed the way seed 000 shows its data (indent 4)."""
    path.write_text(json.dumps(records, ensure_ascii=False, indent=4), encoding="utf-8")
    return path


def items_and_bad(path: Path, **kw):
    got = list(read_records(path, **kw))
    return [g for g in got if not isinstance(g, BadLine)], [g for g in got if isinstance(g, BadLine)]


def test_seed000_pair_array_gives_document_instruction_and_gold(tmp_path: Path):
    items, bad = items_and_bad(seed0_file(tmp_path / "enoch_fine_tune_dev.json"))
    assert bad == []
    assert [i["id"] for i in items] == ["1", "2", "3"]
    for item, rec in zip(items, SEED0_RECORDS, strict=True):
        assert item["kind"] == "alpaca" and item["text"] == rec["input"]
        assert item["instruction"] == SEED0_INSTRUCTION and item["label"] == rec["output"]
        assert prompt_of(item) == f"{SEED0_INSTRUCTION}\n{rec['input']}"
    assert pair_categories(SEED0_INSTRUCTION) == CATEGORIES


def test_iepile_train_and_test_records_keep_task_and_gold(tmp_path: Path):
    text = "相比之下，青岛海牛队和广州松日队的雨中之战虽然也是0∶0，但乏善可陈。"
    instruction = build_instruction("NER", ["组织机构", "地理位置", "人物"], text)
    train = {"task": "NER", "source": "MSRA", "instruction": instruction,
             "output": json.dumps({"组织机构": ["广州松日队", "青岛海牛队"], "地理位置": [],
                                   "人物": []}, ensure_ascii=False)}
    label = json.dumps([{"entity": "广州松日队", "entity_type": "组织机构"},
                        {"entity": "青岛海牛队", "entity_type": "组织机构"}], ensure_ascii=False)
    test = {"id": "e88d2b42", "instruction": instruction, "label": label}
    kg = {"id": "1c25", "task": "KG", "source": "KG", "instruction": build_instruction(
        "KG", [{"entity_type": "人物", "attributes": ["别名"]}], "明治天皇，名睦仁。"),
        "label": json.dumps([{"head": "明治天皇", "relation": "别名", "tail": "睦仁"}],
                            ensure_ascii=False)}
    src = tmp_path / "iepile.json"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (train, test, kg)),
                   encoding="utf-8")
    items, bad = items_and_bad(src)
    assert bad == []
    assert [i["kind"] for i in items] == ["iepile"] * 3
    assert items[0]["task"] == "NER" and items[0]["label"] == train["output"]
    assert items[0]["text"] == text and items[0]["id"] == "1"
    assert items[1]["id"] == "e88d2b42" and items[1]["label"] == label and "task" not in items[1]
    assert items[2]["task"] == "KG" and items[2]["text"] == "明治天皇，名睦仁。"
    assert [prompt_of(i) for i in items] == [train["instruction"], instruction, kg["instruction"]]


def test_instructie_and_raw_annotations_bring_their_gold(tmp_path: Path):
    instructie = {"id": "bac7c32c", "cate": "地理地区", "text": "阿尔夫达尔是挪威的一个市镇。",
                  "relation": [{"head": "阿尔夫达尔", "head_type": "地理地区", "relation": "位于",
                                "tail": "挪威", "tail_type": "地理地区"}]}
    ner = {"text": "胡老说，当画画疲倦时就到院里去看看。",
           "entity": [{"entity": "胡", "entity_type": "人物"}]}
    event = {"text": "5月份在华裁员900余人", "event": [{"event_trigger": "裁员",
             "event_type": "组织关系-裁员", "arguments": [{"argument": "900余人",
                                                      "role": "裁员人数"}]}]}
    src = tmp_path / "sample.json"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                           for r in (instructie, ner, event)), encoding="utf-8")
    items, bad = items_and_bad(src)
    assert bad == []
    assert items[0]["id"] == "bac7c32c" and items[0]["label"] == instructie["relation"]
    assert items[1]["label"] == ner["entity"] and items[2]["label"] == event["event"]
    assert [i["kind"] for i in items] == ["text"] * 3


def test_a_truncated_json_array_keeps_every_whole_record_and_names_the_cut(tmp_path: Path):
    full = json.dumps(SEED0_RECORDS, ensure_ascii=False, indent=4)
    cut = full[:full.rindex("拆下将腰部")]  # the file ends inside record 3
    src = tmp_path / "cut.json"
    src.write_text(cut, encoding="utf-8")
    items, bad = items_and_bad(src)
    assert [i["text"] for i in items] == [r["input"] for r in SEED0_RECORDS[:2]]
    assert len(bad) == 1 and bad[0].record == 3
    assert "record 3" in bad[0].reason and "truncated" in bad[0].reason
    assert bad[0].raw.lstrip().startswith("{") and '"instruction"' in bad[0].raw


def test_a_broken_record_inside_an_array_costs_only_itself(tmp_path: Path):
    text = json.dumps(SEED0_RECORDS, ensure_ascii=False, indent=4)
    broken = text.replace('"output": "安装动作_安装&操作部件1_前备箱储物单元',
                          '"output": 安装动作_安装&操作部件1_前备箱储物单元', 1)
    src = tmp_path / "broken.json"
    src.write_text(broken, encoding="utf-8")
    items, bad = items_and_bad(src)
    assert [i["id"] for i in items] == ["1", "3"]
    assert len(bad) == 1 and bad[0].record == 2 and "not valid JSON" in bad[0].reason
    input_line = text[:text.index('"input": "要安装')].count("\n") + 1
    assert bad[0].line == input_line - 2  # the line of the record's "{"


@pytest.mark.parametrize(("record", "reason"), [
    ({"instruction": SEED0_INSTRUCTION, "output": "x_y"}, "no 'input' document"),
    ({"id": ["a"], "text": "文本"}, "'id' that is a JSON list"),
    ({"text": "文本", "task": 5}, "'task' that is a JSON number"),
    ({"text": "文本", "task": "POS"}, "names task 'POS'"),
    ({"text": "文本", "label": 3}, "'label' that is a JSON number"),
    ({"text": 7}, "empty or non-text document"),
    ({"instruction": ["x"], "input": "文本"}, "'instruction' that is not a string"),
    ({"instruction": '{"instruction": "i", "schema": ["人物"]}'}, "without \"schema\" or \"input\""),
    ({"instruction": '{"instruction": "i", "schema": [', "label": "[]"}, "does not parse"),
    ({"text": "文本", "entity": [{"entity": "胡"}]}, "'entity' item 1 without 'entity_type'"),
    ({"text": "文本", "relation": {"head": "a"}}, "'relation' that is a JSON object"),
    ({"text": "文本", "event": [{"event_type": "e", "arguments": [{"role": "r"}]}]},
     "argument 1 is not"),
    ({"text": "文本", "task": "NER", "label": "[{\"entity\": \"胡\"}]"},
     "does not fit task NER: a label item has no 'entity_type' field"),
    ({"instruction": SEED0_INSTRUCTION, "input": "x", "output": ["a"]}, "'output' that is a JSON list"),
    ([1, 2], "is a JSON list, not an object"),
])
def test_every_bad_record_is_one_clear_reason(tmp_path: Path, record, reason):
    good = {"text": "好的文档"}
    for layout in ("jsonl", "array"):
        src = tmp_path / f"in.{layout}.json"
        rows = [good, record, good]
        if layout == "jsonl":
            src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                           encoding="utf-8")
        else:
            src.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
        items, bad = items_and_bad(src)
        assert len(items) == 2 and len(bad) == 1, (layout, bad)
        assert reason in bad[0].reason, bad[0].reason
        where = "line 2" if layout == "jsonl" else "record 2 (line"
        assert bad[0].reason.startswith(where)
        assert json.loads(bad[0].raw) == record  # the record itself goes to the errors file


def test_generate_reads_plain_lines_inside_jsonl_and_iepile_instructions(tmp_path: Path):
    src = tmp_path / "prompts.jsonl"
    src.write_text('{"instruction": "介绍一下北京"}\n一行纯文本\n{"prompt": "p"}\n{"id": 3}\n',
                   encoding="utf-8")
    items, bad = items_and_bad(src, need="prompt")
    assert [prompt_of(i) for i in items] == ["介绍一下北京", "一行纯文本", "p"]
    assert len(bad) == 1 and "no 'prompt'" in bad[0].reason and bad[0].line == 4


def test_iepile_records_bring_their_own_task_to_extract(ie_model):
    """No --task: each IEPile record's task and instruction decide its prompt,
    grammar and result keys, in one file of mixed tasks."""
    from lamina.ie.api import extract_many
    from tests.ie.conftest import SMALL

    text = "《呐喊》的作者是鲁迅。"
    items = [{"task": "RE", "instruction": build_instruction("RE", ["作者", "国籍"], text),
              "output": "{}"},
             {"task": "NER", "instruction": build_instruction("NER", ["人物"], text),
              "output": "{}"},
             {"task": "KG", "instruction": build_instruction(
                 "KG", [{"entity_type": "人物", "attributes": ["作品"]}], text), "output": "{}"}]
    recs = list(extract_many(ie_model, items, limits=SMALL))
    assert [r["task"] for r in recs] == ["RE", "NER", "KG"]
    assert [list(r["result"]) for r in recs] == [["作者", "国籍"], ["人物"], ["人物"]]
    assert all("error" not in r for r in recs)


@pytest.mark.parametrize("name,text", [
    ("docs.jsonl", '{"id": "a", "text": "张三来了。"}\n{broken\n\n{"instruction": "找人", "input": "李四"}\n'),
    ("docs.json", '[\n  {"text": "王五"},\n  {"text": 3},\n  "赵六"\n]\n'),
    ("docs.txt", "\ufeff第一行\n\n第二行\n"),
])
def test_text_records_read_uploaded_text_as_read_records_reads_the_file(tmp_path, name, text):
    """The server reads an uploaded file's text with the same rules as a file on disk."""
    from lamina.ie.inputs import text_records

    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert list(text_records(text, name, task="NER")) == list(read_records(path, task="NER"))
