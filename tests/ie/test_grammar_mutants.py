"""The answer grammars, judged by llama.cpp's grammar sampler string by string.

Each grammar must accept exactly what the module docstring promises: the schema's
keys in order, json.dumps separators (``", "``, ``": "``), lists and strings within
the limits, JSON strings without raw control characters (escapes allowed), one
optional leading space. The accepted answers are written by ``json.dumps`` (the
training data's own writer); the refused ones each break one rule. Written to kill
the mutants of ``benchmarks/mutation.py`` that the compile-only tests let through.
"""

from __future__ import annotations

import json

import pytest

from lamina.errors import SchemaError
from lamina.ie.grammar import (
    GrammarLimits,
    build_grammar,
    build_icl_grammar,
    build_pair_grammar,
    gbnf_literal,
)
from lamina.ie.schema_split import normalize_schema
from tests.ie.grammar_oracle import GrammarOracle

LIM = GrammarLimits(max_items=2, max_chars=3)


@pytest.fixture(scope="module")
def oracle():
    o = GrammarOracle()
    yield o
    o.close()


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def check(oracle, grammar: str, good: list, bad: list[str]) -> None:
    """Every ``good`` answer (objects, written by json.dumps) is accepted, every ``bad``
    text refused."""
    assert oracle.compiles(grammar), grammar
    for obj in good:
        text = obj if isinstance(obj, str) else dumps(obj)
        assert oracle.accepts(grammar, text), f"refused {text!r}\n{grammar}"
    for text in bad:
        assert not oracle.accepts(grammar, text), f"accepted {text!r}\n{grammar}"


def test_the_oracle_refuses_what_llama_cpp_cannot_parse(oracle):
    assert not oracle.compiles("this is not a grammar ((((")
    assert not oracle.compiles('root ::= undefined-rule')
    assert oracle.accepts('root ::= "ab"', "ab") and not oracle.accepts('root ::= "ab"', "a")


@pytest.mark.parametrize("text", ["plain", 'quote"', "back\\slash", "new\nline", "cr\rx",
                                  "tab\tx", "bell\x07x", "中文", ""])
def test_literal_matches_exactly_its_text(oracle, text):
    grammar = f"root ::= {gbnf_literal(text)}"
    assert oracle.compiles(grammar)
    assert oracle.accepts(grammar, text)
    assert not oracle.accepts(grammar, text + "x")
    if text:
        assert not oracle.accepts(grammar, text[:-1])


def test_literal_escapes_are_gbnf_escapes():
    assert gbnf_literal('a"b\\c\nd\re\tf\x01') == '"a\\"b\\\\c\\nd\\re\\tf\\x01"'


def test_ner_lists_strings_and_separators(oracle):
    g = build_grammar("NER", ["人物", "地点"], LIM)
    good = [{"人物": [], "地点": []}, {"人物": ["张三"], "地点": ["北京", "上海"]},
            {"人物": ["a\"b"], "地点": ["\n", "é"]}, {"人物": ["abc"], "地点": []},
            " " + dumps({"人物": [], "地点": []}),
            '{"人物": ["\\u4eba"], "地点": ["\\/"]}']
    bad = ['{"地点": [], "人物": []}',  # key order
           '{"人物": []}', '{"人物": [], "地点": [], "其他": []}',  # missing / extra key
           '{"人物":[], "地点": []}', '{"人物": [],"地点": []}',  # compact separators
           '{"人物": ["a","b"], "地点": []}',
           '{"人物": ["a", "b", "c"], "地点": []}',  # more than max_items
           '{"人物": ["abcd"], "地点": []}',  # longer than max_chars
           '{"人物": [""], "地点": []}',  # empty string
           '{"人物": ["a\nb"], "地点": []}',  # raw control character
           '{"人物": ["\\x"], "地点": []}', '{"人物": ["\\u12"], "地点": []}',  # bad escapes
           '  {"人物": [], "地点": []}', '{"人物": [], "地点": []} ',
           '{"\\u4eba\\u7269": [], "地点": []}']  # keys as json.dumps writes them
    check(oracle, g, good, bad)


def test_limits_bound_items_and_characters(oracle):
    one = build_grammar("NER", ["人物"], GrammarLimits(max_items=1, max_chars=1))
    check(oracle, one, [{"人物": ["a"]}, {"人物": []}], ['{"人物": ["a", "b"]}', '{"人物": ["ab"]}'])
    wide = build_grammar("NER", ["人物"], GrammarLimits(max_items=4, max_chars=5))
    check(oracle, wide, [{"人物": ["abcde"] * 4}],
          [dumps({"人物": ["a"] * 5}), dumps({"人物": ["abcdef"]})])


def test_default_limits_are_the_cli_defaults():
    """``lamina.extract`` and ``lamina extract`` bound answers alike (docs/extract.md)."""
    import dataclasses

    from lamina.cli.extract_cmd import extract

    defaults = {p.name: p.default for p in extract.params}
    lim = GrammarLimits()
    assert (lim.max_items, lim.max_chars) == (defaults["max_items"], defaults["max_chars"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        lim.max_items = 3  # the shared default cannot be changed by one caller


def test_without_limits_the_defaults_apply(oracle):
    lim = GrammarLimits()
    g = build_grammar("NER", ["人物"])
    check(oracle, g, [{"人物": ["a" * lim.max_chars] * lim.max_items}],
          [dumps({"人物": ["a"] * (lim.max_items + 1)}), dumps({"人物": ["a" * (lim.max_chars + 1)]})])
    p = build_pair_grammar(["人物"])
    check(oracle, p, ["&".join(["人物_" + "a" * lim.max_chars] * lim.max_items)],
          ["&".join(["人物_a"] * (lim.max_items + 1)), "人物_" + "a" * (lim.max_chars + 1)])


@pytest.mark.parametrize("items, chars", [(0, 5), (5, 0), (-1, 1)])
def test_limits_below_one_are_refused(items, chars):
    with pytest.raises(SchemaError, match="at least 1"):
        GrammarLimits(max_items=items, max_chars=chars)
    GrammarLimits(max_items=1, max_chars=1)


def test_re_pairs_subject_then_object(oracle):
    g = build_grammar("RE", ["作者", "国籍"], LIM)
    so = {"subject": "甲", "object": "乙"}
    check(oracle, g, [{"作者": [so, so], "国籍": []}, {"作者": [], "国籍": [so]}],
          ['{"作者": [{"object": "乙", "subject": "甲"}], "国籍": []}',
           '{"作者": [{"subject": "甲"}], "国籍": []}',
           dumps({"作者": [so] * 3, "国籍": []}),
           '{"作者": ["甲"], "国籍": []}'])


def test_ee_events_with_and_without_trigger(oracle):
    schema = normalize_schema("EE", [
        {"event_type": "订婚", "trigger": True, "arguments": ["主体", "时间"]},
        {"event_type": "坍塌", "trigger": False, "arguments": ["人数"]},
        {"event_type": "空", "arguments": []},
        {"event_type": "无", "trigger": False, "arguments": []}])
    g = build_grammar("EE", schema, LIM)
    ev = {"trigger": "订婚", "arguments": {"主体": ["甲", "乙"], "时间": "NAN"}}
    good = [{"订婚": [], "坍塌": [], "空": [], "无": []},
            {"订婚": [ev, {"trigger": "t", "arguments": {}}],
             "坍塌": [{"arguments": {"人数": "3"}}, {"arguments": {}}],
             "空": [{"trigger": "x", "arguments": {}}], "无": [{"arguments": {}}]}]
    e = {"订婚": [], "坍塌": [], "空": []}
    bad = [dumps({**e, "订婚": [{"arguments": ev["arguments"]}], "无": []}),
           dumps({**e, "坍塌": [{"trigger": "t", "arguments": {}}], "无": []}),
           dumps({**e, "订婚": [{"trigger": "t", "arguments": {"时间": "x", "主体": "y"}}],
                  "无": []}),
           dumps({**e, "订婚": [{"trigger": "t", "arguments": {"主体": "y"}}], "无": []}),
           dumps({**e, "订婚": [{"trigger": "t", "arguments": {"主体": [], "时间": "x"}}],
                  "无": []}),
           dumps({**e, "订婚": [{"trigger": "t", "arguments": {"主体": ["a", "b", "c"],
                                                                "时间": "x"}}], "无": []}),
           dumps({**e, "空": [{"trigger": "x", "arguments": {"a": "b"}}], "无": []}),
           dumps({**e, "订婚": [{"trigger": "t", "arguments": {}}] * 3, "无": []}),
           dumps({**e, "无": [{"trigger": "t", "arguments": {}}]}),
           dumps(e)]
    check(oracle, g, good, bad)


def test_eea_events_name_every_role_in_order(oracle):
    schema = normalize_schema("EEA", [{"event_type": "离职", "arguments": ["离职者", "时间"]}])
    g = build_grammar("EEA", schema, LIM)
    check(oracle, g, [{"离职": []}, {"离职": [{"离职者": "甲", "时间": ["x", "y"]}]}],
          [dumps({"离职": [{"时间": "x", "离职者": "甲"}]}), dumps({"离职": [{"离职者": "甲"}]}),
           dumps({"离职": [{}]}),
           dumps({"离职": [{"trigger": "t", "arguments": {"离职者": "甲", "时间": "x"}}]})])


def test_kg_entities_hold_any_in_order_subset_of_attributes(oracle):
    schema = normalize_schema("KG", [{"entity_type": "人物", "attribute": ["生日", "国籍", "别名"]},
                                     {"entity_type": "空", "attribute": []}])
    g = build_grammar("KG", schema, LIM)
    subsets = [{}, {"生日": "1"}, {"国籍": "中"}, {"别名": ["a", "b"]}, {"生日": "1", "别名": "x"},
               {"国籍": "中", "别名": "x"}, {"生日": "1", "国籍": "中", "别名": "x"}]
    good = [{"人物": {"张三": s}, "空": {}} for s in subsets]
    good += [{"人物": {"甲": {}, "乙": {"国籍": "中"}}, "空": {"x": {}}}]
    bad = [dumps({"人物": {"张三": {"国籍": "中", "生日": "1"}}, "空": {}}),
           '{"人物": {"张三": {"生日": "1", "生日": "2"}}, "空": {}}',
           dumps({"人物": {"张三": {"其他": "1"}}, "空": {}}),
           dumps({"人物": {"a": {}, "b": {}, "c": {}}, "空": {}}),
           dumps({"人物": {"张三": {}}, "空": {"x": {"a": "b"}}}),
           dumps({"人物": [], "空": {}})]
    check(oracle, g, good, bad)
    one = build_grammar("KG", schema, GrammarLimits(max_items=1, max_chars=3))
    check(oracle, one, [{"人物": {"甲": {"生日": "1"}}, "空": {}}],
          [dumps({"人物": {"甲": {}, "乙": {}}, "空": {}})])


def test_described_schema_keys_come_from_the_mapping(oracle):
    g = build_grammar("NER", {"人物": "人的名字", "地点": "地名"}, LIM)
    check(oracle, g, [{"人物": ["a"], "地点": []}], [dumps({"人的名字": [], "地名": []})])


def test_pair_grammar_joins_category_and_entity(oracle):
    g = build_pair_grammar(["人物", "地_点"], LIM)
    check(oracle, g, ["", "人物_张三", " 人物_abc", "人物_甲&地_点_北京", "地_点_a_b"],
          ["人物", "人物_", "其他_甲", "人物张三", "人物_甲&", "人物_甲&人物_乙&人物_丙",
           "人物_abcd", "人物_a&b", "人物_a\nb", "  人物_a"])
    one = build_pair_grammar(["人物"], GrammarLimits(max_items=1, max_chars=2))
    check(oracle, one, ["人物_ab"], ["人物_a&人物_b", "人物_abc"])


def test_ee_items_without_a_trigger_flag_have_triggers():
    """``trigger`` defaults to true, as normalize_schema fills it in."""
    raw = [{"event_type": "订婚", "arguments": ["主体"]}]
    assert build_grammar("EE", raw, LIM) == build_grammar("EE", normalize_schema("EE", raw), LIM)
    assert normalize_schema("EE", raw)[0]["trigger"] is True


def test_eet_lists_trigger_strings(oracle):
    g = build_grammar("EET", ["人生-订婚", "组织关系-裁员"], LIM)
    check(oracle, g, [{"人生-订婚": ["订婚"], "组织关系-裁员": []}],
          [dumps({"人生-订婚": [{"trigger": "订婚"}], "组织关系-裁员": []}),
           dumps({"人生-订婚": []})])


# --format icl: the answer shapes of lamina.ie.icl's docstring (seed 002's task set),
# written by json.dumps as the prompt's solved examples are.
LABELS = ["人物", '引"号']  # a label json.dumps must escape


def test_icl_ner_entities_of_the_labels(oracle):
    g = build_icl_grammar("ner", LABELS, LIM)
    ent = {"entity": "甲", "type": "人物"}
    check(oracle, g, [[], [ent], [ent, {"entity": "abc", "type": '引"号'}], " []"],
          [dumps([{"entity": "甲", "type": "地点"}]),  # not a label
           dumps([{"type": "人物", "entity": "甲"}]),  # key order
           dumps([{"entity": "甲"}]), dumps([ent] * 3), dumps([{"entity": "abcd", "type": "人物"}]),
           json.dumps([ent]), "  []", '[{"entity":"甲", "type": "人物"}]', "{}"])
    free = build_icl_grammar("ner", (), LIM)
    check(oracle, free, [[{"entity": "甲", "type": "随便"}]],
          [dumps([{"entity": "甲", "type": "随便一个"}])])  # any type, within max_chars


def test_icl_re_answers_one_relation_name(oracle):
    g = build_icl_grammar("re", LABELS, LIM)
    check(oracle, g, ['"人物"', " " + dumps('引"号')],
          ['"地点"', '["人物"]', "人物", '"人物" ', '"引"号"', json.dumps("人物")])
    free = build_icl_grammar("re", (), LIM)
    check(oracle, free, ['"作者"', '"abc"'], ['"abcd"', "[]", '""'])


def test_icl_ee_events_of_the_labels_with_role_argument_lists(oracle):
    g = build_icl_grammar("ee", LABELS, LIM)
    arg = {"role": "主体", "argument": "甲"}
    ev = {"event_type": "人物", "arguments": [arg, arg]}
    check(oracle, g, [[], [ev], [{"event_type": '引"号', "arguments": []}, ev]],
          [dumps([{**ev, "event_type": "订婚"}]), dumps([{"arguments": [], "event_type": "人物"}]),
           dumps([{"event_type": "人物"}]), dumps([{**ev, "arguments": [arg] * 3}]),
           dumps([{**ev, "arguments": [{"argument": "甲", "role": "主体"}]}]),
           dumps([{**ev, "arguments": {"主体": "甲"}}]), dumps([ev] * 3)])


def test_icl_rte_triples_with_a_label_as_predicate(oracle):
    g = build_icl_grammar("rte", LABELS, LIM)
    check(oracle, g, [[], [["甲", "人物", "乙"]], [["甲", '引"号', "乙"], ["a", "人物", "b"]]],
          [dumps([["甲", "作者", "乙"]]), dumps([["人物", "甲", "乙"]]), dumps([["甲", "人物"]]),
           dumps([["甲", "人物", "乙", "丙"]]), dumps([{"subject": "甲", "object": "乙"}])])


def test_icl_da_samples_with_labels_as_entity_types(oracle):
    g = build_icl_grammar("da", LABELS, LIM)
    s = {"context": "甲在乙", "head_entity": "甲", "head_type": "人物", "tail_entity": "乙",
         "tail_type": '引"号'}
    check(oracle, g, [[], [s], [s, {**s, "head_type": '引"号', "tail_type": "人物"}]],
          [dumps([{**s, "head_type": "地点"}]), dumps([{**s, "tail_type": "地点"}]),
           dumps([dict(reversed(list(s.items())))]),
           dumps([{k: v for k, v in s.items() if k != "context"}]), dumps([s] * 3)])


def test_icl_grammar_without_limits_uses_the_defaults(oracle):
    lim = GrammarLimits()
    g = build_icl_grammar("rte")
    triple = ["a" * lim.max_chars, "p", "b"]
    check(oracle, g, [[triple] * lim.max_items],
          [dumps([triple] * (lim.max_items + 1)), dumps([["a" * (lim.max_chars + 1), "p", "b"]])])


def test_icl_grammar_for_an_unknown_task_is_refused():
    with pytest.raises(SchemaError, match="'kg'"):
        build_icl_grammar("kg")
