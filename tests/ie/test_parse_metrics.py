"""Lenient parsing, the seed-000 pair format, and F1/ROUGE/BLEU against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest

from lamina.ie.metrics import PRF, f1_score, percent, score_f1, seed000_scores
from lamina.ie.parse import parse_answer, parse_pairs
from lamina.ie.readers import read_answer, read_label
from lamina.ie.schema_split import normalize_schema

NER = ["人物", "地点"]


def test_lenient_parse_strips_chatter_and_fences_and_keeps_schema_order():
    text = '答案如下：\n```json\n{"地点": ["北京"], "人物": "康有为", "其他": ["x"]}\n```'
    parsed = parse_answer("NER", NER, text)
    assert parsed.ok and list(parsed.result) == NER
    assert parsed.result == {"人物": ["康有为"], "地点": ["北京"]}
    assert any("其他" in n for n in parsed.notes)


def test_lenient_parse_accepts_python_literal_and_fills_missing_keys():
    parsed = parse_answer("NER", NER, "{'人物': ['梁启超']}")
    assert parsed.ok and parsed.result == {"人物": ["梁启超"], "地点": []}
    assert "missing key '地点'" in parsed.notes


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty answer"),
    ("没有找到实体", "no JSON object"),
    ('{"人物": ["康有为"', "no JSON object"),
    ('{"人物": [康有为]}', "invalid JSON"),
    ('["康有为"]', "JSON list, not an object"),
])
def test_unreadable_answers_fail_with_a_reason(text, why):
    parsed = parse_answer("NER", NER, text)
    assert not parsed.ok and why in parsed.error
    assert parsed.result == {"人物": [], "地点": []}


def test_event_answers_keep_roles_in_schema_order_with_nan():
    schema = normalize_schema("EE", [{"event_type": "人生-订婚", "arguments": ["订婚主体", "时间"]}])
    text = json.dumps({"人生-订婚": [{"trigger": "订婚", "arguments": {
        "时间": "NAN", "订婚主体": ["向佐", "郭碧婷"], "多余": "x"}}]}, ensure_ascii=False)
    parsed = parse_answer("EE", schema, text)
    assert parsed.result["人生-订婚"][0]["arguments"] == {"订婚主体": ["向佐", "郭碧婷"], "时间": "NAN"}
    assert list(parsed.result["人生-订婚"][0]["arguments"]) == ["订婚主体", "时间"]


def test_pairs_format_of_seed_000():
    cats = ["安装动作", "操作部件1", "目标_部件"]
    parsed = parse_pairs("安装动作_安装&操作部件1_前备箱储物单元&目标_部件_夹子&安装动作_安装", cats)
    assert parsed.ok
    assert parsed.result == {"安装动作": ["安装", "安装"], "操作部件1": ["前备箱储物单元"],
                             "目标_部件": ["夹子"]}
    assert parse_pairs("无_x&乱码", None).result == {"无": ["x"]}
    assert not parse_pairs("乱码没有分隔", cats).ok
    assert parse_pairs("", cats).ok


def test_prf_counts_duplicates_as_multisets():
    c = PRF()
    c.add(gold=[("a", "T"), ("b", "T")], pred=[("a", "T"), ("a", "T"), ("c", "T")])
    # tp = 1 (the second "a" has no gold left), pred = 3, gold = 2
    assert (c.tp, c.pred, c.gold) == (1, 3, 2)
    s = c.scores()
    assert s["P"] == 33.33 and s["R"] == 50.0 and s["F1"] == 40.0  # 2*(1/3)(1/2)/(5/6) = 0.4


def test_ner_f1_hand_computed_over_exact_partial_empty_duplicate_unparsable():
    label = lambda *pairs: [{"entity": e, "entity_type": t} for e, t in pairs]  # noqa: E731
    rows = [
        # exact match: 2 tp
        (read_label("NER", label(("康有为", "人物"), ("北京", "地点"))),
         ['{"人物": ["康有为"], "地点": ["北京"]}'], "A"),
        # partial: 1 tp, 1 wrong (case differs: no match), 1 missed
        (read_label("NER", label(("Obama", "人物"), ("上海", "地点"))),
         ['{"人物": ["obama"], "地点": ["上海"]}'], "A"),
        # empty prediction: 1 missed
        (read_label("NER", label(("严复", "人物"))), ['{"人物": [], "地点": []}'], "B"),
        # duplicates: 1 tp + 1 false positive
        (read_label("NER", label(("天津", "地点"))), ['{"人物": [], "地点": ["天津", "天津"]}'],
         "B"),
        # unparsable: error, 1 missed
        (read_label("NER", label(("广州", "地点"))), ['{"地点": ["广州"'], "B"),
    ]
    report = score_f1("NER", rows)
    ent = report["levels"]["entity"]
    # tp = 2 + 1 + 0 + 1 + 0 = 4; pred = 2 + 2 + 0 + 2 + 0 = 6; gold = 2 + 2 + 1 + 1 + 1 = 7
    assert (ent["tp"], ent["pred"], ent["gold"]) == (4, 6, 7)
    assert ent["P"] == 66.67 and ent["R"] == 57.14  # DeepKE: round(tp / n * 100, 2)
    assert ent["F1"] == 61.54  # from the rounded P and R: round(2PR / (P + R), 2)
    assert report["errors"] == 1 and report["records"] == 5
    # per type: 人物 tp 1 (康有为), pred 2, gold 3; 地点 tp 3, pred 4, gold 4
    per = ent["per_type"]
    assert (per["人物"]["tp"], per["人物"]["pred"], per["人物"]["gold"]) == (1, 2, 3)
    assert (per["地点"]["tp"], per["地点"]["pred"], per["地点"]["gold"]) == (3, 4, 4)
    by = report["by_source"]
    assert by["A"]["levels"]["entity"]["F1"] == 75.0  # tp 3, pred 4, gold 4
    assert by["B"]["errors"] == 1


def test_ee_scores_events_and_arguments_separately():
    gold = read_label("EE", [{"event_type": "人生-订婚", "event_trigger": "订婚", "arguments": [
        {"argument": "向佐", "role": "订婚主体"}, {"argument": "郭碧婷", "role": "订婚主体"}]}])
    pred = json.dumps({"人生-订婚": [{"trigger": "订婚", "arguments": {
        "订婚主体": ["向佐", "某人"], "时间": "NAN"}}]}, ensure_ascii=False)
    report = score_f1("EE", [(gold, [pred], None)])
    assert report["levels"]["event"]["F1"] == 100.0
    arg = report["levels"]["argument"]
    assert (arg["tp"], arg["pred"], arg["gold"]) == (1, 2, 2)  # NAN is not an argument


def test_deepke_rounding_takes_f1_from_rounded_p_and_r():
    assert percent(1, 6) == 16.67 and percent(1, 1) == 100.0 and percent(0, 0) == 0.0
    assert f1_score(16.67, 100.0) == 28.58  # the exact F1 of tp 1, pred 6, gold 1 is 28.57
    c = PRF(tp=1, pred=6, gold=1)
    assert c.scores()["F1"] == 28.58


def test_answers_read_as_deepke_does():
    """Changed with the DeepKE parity work: the old tests expected RE subject/object,
    KG (entity, attribute, value) and flat EEA roles, which DeepKE does not read."""
    # RE: DeepKE reads head/tail; IEPile's subject/object need --fix re-subject-object
    rel = {"作者": [{"subject": "你的名字", "object": "新海诚"}]}
    assert read_answer("RE", rel) == (True, [("", "作者", "")])
    assert read_answer("RE", rel, ["re-subject-object"]) == (True, [("你的名字", "作者", "新海诚")])
    assert read_answer("RE", {"作者": [{"head": "你的名字", "tail": "新海诚"}]}) == \
        (True, [("你的名字", "作者", "新海诚")])
    assert read_label("RE", '[{"head": "你的名字", "relation": "作者", "tail": "新海诚"}]') == \
        [("你的名字", "作者", "新海诚")]
    # KG: DeepKE's (type, entity, attributes) records, "无"/"nan" dropped; triples with the fix
    kg = {"人物": {"马三立": {"别名": "马桂福", "职业": ["演员", "大师"], "国籍": "无"}}}
    assert read_answer("KG", kg) == \
        (True, [("人物", "马三立", {"别名": "马桂福", "职业": ["演员", "大师"]})])
    assert sorted(read_answer("KG", kg, ["kg-triples"])[1]) == \
        [("马三立", "别名", "马桂福"), ("马三立", "职业", "大师"), ("马三立", "职业", "演员")]
    assert read_answer("EET", {"组织关系-裁员": ["裁员"]}) == (True, [("裁员", "组织关系-裁员")])
    # EEA: the trigger and "arguments" are read as in EE; the gold trigger is ""
    eea = {"辞职": [{"trigger": "辞职", "arguments": {"离职者": "张三", "时间": "NAN"}}]}
    assert read_answer("EEA", eea) == (True, [("辞职", "辞职", (("张三", "离职者"),))])
    assert read_answer("EEA", {"辞职": [{"离职者": "张三"}]}) == (True, [("辞职", "", ())])
    assert read_label("EEA", [{"event_type": "辞职", "event_trigger": "辞职", "arguments": [
        {"argument": "张三", "role": "离职者"}]}]) == [("辞职", "", (("张三", "离职者"),))]
    # strict JSON: whitespace is fine, fences or a list are not
    assert read_answer("NER", ' {"人物": ["康有为"]}\n') == (True, [("康有为", "人物")])
    assert read_answer("NER", '```json\n{"人物": []}\n```') == (False, [])
    assert read_answer("NER", '["康有为"]') == (False, [])


def test_seed000_scores_hand_computed():
    pytest.importorskip("jieba")
    pytest.importorskip("rouge_chinese")
    pytest.importorskip("nltk")
    # identical -> 100 everywhere
    same = seed000_scores(["w1 w2 w3 w4"], ["w1 w2 w3 w4"])
    assert [same[k] for k in ("rouge-1", "rouge-2", "rouge-l", "bleu-4")] == [100.0] * 4
    # empty vs empty: both become '*****' for ROUGE (100), BLEU over no characters is 0
    empty = seed000_scores([""], [""])
    assert empty["rouge-1"] == 100.0 and empty["bleu-4"] == 0.0
    # prefix: hyp = 4 words of the 5-word ref. ROUGE-1 F = 2*1*0.8/1.8, ROUGE-2 F: 3 of 4
    # bigrams, P=1 -> 2*0.75/1.75; ROUGE-L = ROUGE-1 here; BLEU-4 over characters: every
    # n-gram of the 11-character hypothesis is in the 14-character reference, brevity
    # penalty exp(1 - 14/11).
    s = seed000_scores(["w1 w2 w3 w4"], ["w1 w2 w3 w4 w5"])
    assert s["rouge-1"] == round(100 * 1.6 / 1.8, 4)
    assert s["rouge-2"] == round(100 * 1.5 / 1.75, 4)
    assert s["rouge-l"] == pytest.approx(100 * 1.6 / 1.8, abs=1e-3)
    assert s["bleu-4"] == pytest.approx(100 * math.exp(1 - 14 / 11), abs=1e-3)
    # the mean over records; a whitespace-only hypothesis is left out (rouge_chinese raises)
    both = seed000_scores(["w1 w2 w3 w4", "aa", "  "], ["w1 w2 w3 w4", "bb", "x"])
    assert both["rouge-1"] == 50.0 and both["records"] == 3 and both["scored"]["rouge-1"] == 2
    assert both["skipped"][0]["index"] == 2 and "empty" in both["skipped"][0]["error"]
