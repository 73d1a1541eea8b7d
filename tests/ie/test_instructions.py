"""Instruction strings, task table, schema validation, split and merge."""

from __future__ import annotations

import json

import pytest

from lamina.errors import SchemaError
from lamina.ie.instructions import build_instruction, build_pair_instruction
from lamina.ie.schema_split import (
    merge_results,
    normalize_schema,
    schema_keys,
    split_schema,
)
from lamina.ie.tasks import DESCRIPTIONS, TASKS, description, get_task

# The three data instances of seed 002 (the "instruction" field, as stored there).
SEED_NER = "{\"instruction\": \"你是专门进行实体抽取的专家。请从input中抽取出符合schema定义的实体，不存在的实体类型返回空列表。请按照JSON字符串的格式回答。\", \"schema\": [\"组织机构\", \"地理位置\", \"人物\"], \"input\": \"对于康有为、梁启超、谭嗣同、严复这些从旧文化营垒中走来的年轻“布衣”，他们背负着沉重的历史包袱，能够挣脱旧传统的束缚，为拯救民族的危亡而献身，实在是中华民族的脊梁。\"}"
SEED_RE = "{\"instruction\": \"你是专门进行关系抽取的专家。请从input中抽取出符合schema定义的关系三元组，不存在的关系返回空列表。请按照JSON字符串的格式回答。\", \"schema\": [\"国籍\", \"作者\", \"毕业院校\", \"主角\"], \"input\": \"对比日本动画电影在中日两国的票房表现，可以发现，日漫风格的动画，在国内也有圈层限制，即便是宫崎骏《千与千寻》、新海诚《你的名字》，这类日本动画票房榜首的电影，国内票房也停留在5亿左右\"}"
SEED_EE = "{\"instruction\": \"你是专门进行事件提取的专家。请从input中抽取出符合schema定义的事件，不存在的事件返回空列表，不存在的论元返回NAN，如果论元存在多值请返回列表。请按照JSON字符串的格式回答。\", \"schema\": [{\"event_type\": \"人生-求婚\", \"trigger\": true, \"arguments\": [\"求婚对象\"]}, {\"event_type\": \"人生-订婚\", \"trigger\": true, \"arguments\": [\"订婚主体\", \"时间\"]}, {\"event_type\": \"灾害/意外-坍/垮塌\", \"trigger\": true, \"arguments\": [\"受伤人数\", \"坍塌主体\"]}, {\"event_type\": \"人生-失联\", \"trigger\": true, \"arguments\": [\"地点\", \"失联者\"]}], \"input\": \"郭碧婷订婚后，填资料依旧想要填单身，有谁注意向佐说了什么？\"}"
# OneKE's English NER example (DeepKE OneKE.md).
ONEKE_EN = "{\"instruction\": \"You are an expert in named entity recognition. Please extract entities that match the schema definition from the input. Return an empty list if the entity type does not exist. Please respond in the format of a JSON string.\", \"schema\": [\"person\", \"organization\", \"else\", \"location\"], \"input\": \"284 Robert Allenby ( Australia ) 69 71 71 73 , Miguel Angel Martin ( Spain ) 75 70 71 68 ( Allenby won at first play-off hole )\"}"


def test_ner_instruction_matches_seed_byte_for_byte():
    text = json.loads(SEED_NER)["input"]
    schema = normalize_schema("NER", ["组织机构", "地理位置", "人物"])
    assert build_instruction("NER", schema, text, "zh") == SEED_NER


def test_re_instruction_matches_seed_byte_for_byte():
    text = json.loads(SEED_RE)["input"]
    schema = normalize_schema("RE", '["国籍", "作者", "毕业院校", "主角"]')
    assert build_instruction("RE", schema, text, "zh") == SEED_RE


def test_ee_instruction_matches_seed_and_fills_trigger_in_trained_key_order():
    text = json.loads(SEED_EE)["input"]
    user_schema = [  # trigger omitted or keys shuffled: re-emitted as event_type, trigger, arguments
        {"arguments": ["求婚对象"], "event_type": "人生-求婚"},
        {"event_type": "人生-订婚", "arguments": ["订婚主体", "时间"], "trigger": True},
        {"event_type": "灾害/意外-坍/垮塌", "arguments": ["受伤人数", "坍塌主体"]},
        {"event_type": "人生-失联", "arguments": ["地点", "失联者"]},
    ]
    schema = normalize_schema("EE", user_schema)
    assert build_instruction("EE", schema, text, "zh") == SEED_EE


def test_english_instruction_matches_oneke_example():
    data = json.loads(ONEKE_EN)
    assert build_instruction("NER", data["schema"], data["input"], "en") == ONEKE_EN


def test_every_task_has_distinct_zh_and_en_descriptions():
    assert set(DESCRIPTIONS) == {(t, lang) for t in TASKS for lang in ("zh", "en")}
    assert len(set(DESCRIPTIONS.values())) == len(DESCRIPTIONS)
    assert description("kg", "zh").startswith("你是一个图谱实体知识结构化专家")
    assert description("EEA", "en").startswith("You are an expert in event argument extraction.")


def test_split_defaults_follow_iepile():
    assert {t: s.split_num for t, s in TASKS.items()} == \
        {"NER": 6, "RE": 4, "EE": 4, "EET": 4, "EEA": 4, "KG": 1}


@pytest.mark.parametrize(("n", "split", "sizes"), [
    (3, 6, [3]),          # shorter than split_num: one chunk
    (6, 6, [6]),
    (7, 6, [7]),          # a tail of 1 (< 6 // 2) joins the last chunk
    (9, 6, [6, 3]),       # a tail of 3 (>= 6 // 2) is its own chunk
    (5, 4, [5]),
    (6, 4, [4, 2]),
    (12, 4, [4, 4, 4]),
    (3, 1, [1, 1, 1]),    # KG asks one entity type at a time
    (10, -1, [10]),       # -1: never split
])
def test_split_schema_deepke_rule(n, split, sizes):
    items = [f"t{i}" for i in range(n)]
    chunks = split_schema(items, split)
    assert [len(c) for c in chunks] == sizes
    assert [x for c in chunks for x in c] == items


def test_merge_keeps_schema_order_whatever_order_chunks_answer_in():
    schema = normalize_schema("NER", ["a", "b", "c", "d", "e"])
    parts = [{"e": ["5"], "d": []}, None, {"b": ["2"], "a": ["1"], "zz": ["x"]}]
    merged = merge_results("NER", schema, parts)
    assert list(merged) == ["a", "b", "c", "d", "e"]
    assert merged == {"a": ["1"], "b": ["2"], "c": [], "d": [], "e": ["5"]}
    kg = normalize_schema("KG", [{"entity_type": "人物", "attribute": ["x"]}])
    assert merge_results("KG", kg, [None]) == {"人物": {}}


@pytest.mark.parametrize(("task", "schema", "message"), [
    ("NER", '{"not": "a list"', "not valid JSON"),
    ("NER", '"人物"', "must be a JSON list"),
    ("NER", "[]", "empty"),
    ("NER", '["人物", 3]', "not a non-empty string"),
    ("NER", '["人物", "人物"]', "more than once"),
    ("EE", '["人生-订婚"]', "must be an object"),
    ("EE", '[{"event_type": "x", "arguments": "y"}]', "list of non-empty strings"),
    ("EE", '[{"event_type": "x", "trigger": "yes", "arguments": []}]', "true or false"),
    ("KG", '[{"entity_type": "人物"}]', None),
])
def test_schema_validation_messages(task, schema, message):
    if message is None:
        assert normalize_schema(task, schema) == [{"entity_type": "人物", "attributes": []}]
        return
    with pytest.raises(SchemaError, match=message):
        normalize_schema(task, schema)


def test_unknown_task_is_a_clear_error():
    with pytest.raises(SchemaError, match="Unknown extraction task 'XYZ'.*"):
        get_task("XYZ")


def test_described_schema_is_kept_whole_and_keyed_in_order():
    schema = normalize_schema("NER", {"职位": "职业或职务", "公司": "法人实体"})
    assert split_schema(schema, 1) == [{"职位": "职业或职务", "公司": "法人实体"}]
    assert schema_keys("NER", schema) == ["职位", "公司"]


def test_pair_instruction_lists_categories_in_order():
    text = build_pair_instruction(["安装动作", "方位"])
    assert "'安装动作','方位'" in text and "'_'" in text and "'&'" in text


def test_kg_schema_says_attributes_as_in_the_iepile_kg_data():
    """DeepKE's data/KG files (and OneKE) write "attributes"; the instruction must too."""
    old = normalize_schema("KG", [{"entity_type": "人物", "attribute": ["出生日期"]}])
    new = normalize_schema("KG", [{"entity_type": "人物", "attributes": ["出生日期"]}])
    assert old == new == [{"entity_type": "人物", "attributes": ["出生日期"]}]
    text = build_instruction("KG", new, "文本")
    assert '"schema": [{"entity_type": "人物", "attributes": ["出生日期"]}]' in text
