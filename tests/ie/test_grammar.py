"""Schema -> GBNF: llama.cpp accepts it, and constrained answers always parse."""

from __future__ import annotations

import json
import time

import pytest

import lamina
from lamina.ie.api import extract_many
from lamina.ie.grammar import GrammarLimits, build_grammar, build_pair_grammar, gbnf_literal
from lamina.ie.schema_split import normalize_schema, schema_keys
from lamina.runtime.sampling import SamplingParams
from tests.ie.conftest import SCHEMAS, SMALL

#: Unfiltered seeded sampling: the random model wanders through the whole grammar.
WILD = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                      max_tokens=640, seed=1234)

DOCS = [f"第{i}篇：{name}于{i % 28 + 1}日在{city}宣布订婚，{i}人受伤。"
        for i, (name, city) in enumerate(
            [("郭碧婷", "北京"), ("向佐", "上海"), ("康有为", "广州"), ("梁启超", "天津"),
             ("严复", "福州")] * 10)]


def _check_shape(task: str, schema, data, lim: GrammarLimits) -> None:
    """Exactly the schema keys in order, each value of the task's shape, within bounds."""
    keys = schema_keys(task, schema)
    assert list(data) == keys
    # llama.cpp lets a byte-fallback token start a UTF-8 sequence that the next token
    # does not finish; such bytes decode to U+FFFD and are not grammar characters.
    strs_ok = lambda v: isinstance(v, str) and 1 <= len(v.replace("\ufffd", "") or "x") \
        <= lim.max_chars  # noqa: E731
    value_ok = lambda v: strs_ok(v) or (isinstance(v, list) and 1 <= len(v) <= lim.max_items  # noqa: E731
                                        and all(map(strs_ok, v)))
    for item, key in zip(schema, keys, strict=True):
        v = data[key]
        if task == "KG":
            assert isinstance(v, dict) and len(v) <= lim.max_items
            for props in v.values():
                order = [a for a in item["attributes"] if a in props]
                assert list(props) == order and all(map(value_ok, props.values()))
            continue
        assert isinstance(v, list) and len(v) <= lim.max_items
        for el in v:
            if task in ("NER", "EET"):
                assert strs_ok(el)
            elif task == "RE":
                assert list(el) == ["subject", "object"] and all(map(strs_ok, el.values()))
            elif task == "EE":
                assert list(el) == ["trigger", "arguments"] and strs_ok(el["trigger"])
                assert list(el["arguments"]) in ([], item["arguments"])
                assert all(map(value_ok, el["arguments"].values()))
            else:  # EEA
                assert list(el) == item["arguments"] and all(map(value_ok, el.values()))


@pytest.fixture(scope="module")
def grammars(base_gguf):
    """llama.cpp's grammar parser and matcher on the fixture vocabulary."""
    from tests.ie.grammar_oracle import GrammarOracle

    g = GrammarOracle(base_gguf)
    yield g
    g.close()


def _answer(task: str, schema) -> dict:
    """A hand-written answer of ``task``'s shape that uses every branch SMALL allows:
    two-item lists, multi-value arguments, an event without arguments, a KG subset."""
    out: dict = {}
    for item, key in zip(schema, schema_keys(task, schema), strict=True):
        if task in ("NER", "EET"):
            out[key] = ["甲", "乙丙"]
        elif task == "RE":
            out[key] = [{"subject": "甲", "object": "乙"}, {"subject": "丙丁", "object": "戊"}]
        elif task == "EE":
            out[key] = [{"trigger": "订", "arguments": {r: "甲" for r in item["arguments"]}},
                        {"trigger": "婚", "arguments": {}}]
        elif task == "EEA":
            roles = item["arguments"]
            out[key] = [{r: ["甲", "乙"] if i == 0 else "丙" for i, r in enumerate(roles)}]
        else:  # KG: any in-order subset of the attributes
            attrs = item["attributes"]
            out[key] = {"甲": {attrs[0]: "乙", attrs[2]: ["丙", "丁"]}, "戊": {}}
    return out


def _empty(task: str, schema) -> dict:
    return {k: {} if task == "KG" else [] for k in schema_keys(task, schema)}


def _dumps(data) -> str:
    return json.dumps(data, ensure_ascii=False)


def test_the_grammar_check_rejects_what_llama_cpp_rejects(grammars):
    """The reference itself can fail: broken grammars do not compile, and a text
    outside a grammar, or stopping early, is not accepted."""
    for broken in ("this is not a grammar ((((", 'root ::= "a" (', "root ::= missing",
                   'main ::= "a"', 'root ::= [a-'):
        assert not grammars.compiles(broken), broken
    g = 'root ::= "{" [a-z]{1,3} "}"'
    assert grammars.accepts(g, "{ab}")
    assert not grammars.accepts(g, "{abcd}") and not grammars.accepts(g, "{ab")
    assert not grammars.accepts(g, "{AB}")


@pytest.mark.parametrize("task", list(SCHEMAS))
def test_grammar_compiles_in_llama_cpp_and_matches_the_answer_shape(grammars, task):
    schema = normalize_schema(task, SCHEMAS[task])
    keys = schema_keys(task, schema)
    full, empty = _answer(task, schema), _empty(task, schema)
    renamed = {(k + "x" if i == 0 else k): v for i, (k, v) in enumerate(full.items())}
    for lim in (SMALL, GrammarLimits(), GrammarLimits(1, 1)):
        g = build_grammar(task, schema, lim)
        assert grammars.compiles(g)
        assert grammars.accepts(g, _dumps(empty))
        assert grammars.accepts(g, " " + _dumps(empty))  # the one optional leading space
        assert grammars.accepts(g, _dumps(full)) == (lim.max_items >= 2)
        assert not grammars.accepts(g, _dumps(renamed))  # a key that is not the schema's
        assert not grammars.accepts(g, _dumps(full)[:-1])  # stopped before the end
        assert not grammars.accepts(g, json.dumps(empty))  # \u escapes, not json.dumps style
    if len(keys) > 1:  # every key once, in schema order
        swapped = dict(reversed(list(empty.items())))
        assert not grammars.accepts(build_grammar(task, schema, SMALL), _dumps(swapped))
    g = build_grammar(task, schema, SMALL)
    assert not grammars.accepts(g, _dumps(full).replace("甲", "甲乙丙丁", 1))  # > max_chars


def test_grammar_keys_with_quotes_backslashes_and_newlines_are_escaped(grammars, wild_model):
    schema = ['引号"类', "反斜杠\\类", "换行\n类"]
    g = build_grammar("NER", schema, SMALL)
    assert grammars.compiles(g)
    answer = {schema[0]: ["甲"], schema[1]: [], schema[2]: ['"\\']}
    assert grammars.accepts(g, _dumps(answer))
    text = _dumps(answer)
    for raw in (text.replace('\\"类', '"类'), text.replace("\\\\类", "\\类"),
                text.replace("\\n类", "\n类")):  # the escape left out: not JSON, rejected
        assert raw != text and not grammars.accepts(g, raw)
    assert gbnf_literal(json.dumps('引号"类', ensure_ascii=False)) == '"\\"引号\\\\\\"类\\""'
    # constrained sampling through lamina writes JSON with exactly these keys
    for rec in extract_many(wild_model, DOCS[:6], task="NER", schema=schema, limits=SMALL,
                            params=WILD):
        assert "error" not in rec
        data = json.loads(rec["output"])
        _check_shape("NER", schema, data, SMALL)
        assert rec["result"] == data
    pairs = build_pair_grammar(["人物", "地_点"], SMALL)
    assert grammars.compiles(pairs)
    assert grammars.accepts(pairs, "人物_甲&地_点_北京") and grammars.accepts(pairs, "")
    assert not grammars.accepts(pairs, "地点_北京") and not grammars.accepts(pairs, "人物_甲乙丙丁")


@pytest.mark.parametrize("task", list(SCHEMAS))
def test_fifty_constrained_extractions_all_parse_with_schema_keys_in_order(wild_model, task):
    schema = normalize_schema(task, SCHEMAS[task])
    start = time.perf_counter()
    records = list(extract_many(wild_model, DOCS, task=task, schema=schema, limits=SMALL,
                                params=WILD))
    seconds = time.perf_counter() - start
    assert len(records) == 50
    assert [r for r in records if "error" in r] == []
    for rec in records:
        data = json.loads(rec["output"])
        _check_shape(task, schema, data, SMALL)
        assert rec["result"] == data
    # Sampling at temperature 1 walks every branch of the grammar: non-empty lists,
    # multi-value arguments, escapes. Check it really did.
    # (KG's one-token "{}" answer dominates even when sampling; its shape is still checked.)
    if task != "KG":
        assert len({r["output"] for r in records}) > 10
        assert sum(bool(v) for r in records for v in r["result"].values()) > 10
    print(f"{task}: 50 extractions in {seconds:.2f} s")


@pytest.mark.parametrize("task", ["NER", "EE"])
def test_greedy_extractions_with_the_chat_model_parse(ie_model, task):
    schema = normalize_schema(task, SCHEMAS[task])
    for rec in extract_many(ie_model, DOCS[:5], task=task, schema=schema, limits=SMALL):
        assert "error" not in rec
        _check_shape(task, schema, json.loads(rec["output"]), SMALL)


def test_split_schema_answers_merge_in_schema_order(ie_model):
    schema = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]
    rec = next(extract_many(ie_model, ["郭碧婷订婚后，填资料依旧想要填单身。"], task="NER",
                            schema=schema, split_num=2, limits=SMALL))
    assert "error" not in rec
    assert list(json.loads(rec["output"])) == schema


def test_pair_grammar_answers_parse_into_categories(wild_model):
    cats = ["人物", "地点"]
    for rec in extract_many(wild_model, DOCS[:10], task="NER", schema=cats, style="pairs",
                            limits=SMALL, params=WILD):
        assert "error" not in rec
        assert list(rec["result"])[:2] == cats and set(rec["result"]) <= set(cats)
        pairs = [p for p in rec["output"].split("&") if p]
        assert len(pairs) == sum(len(v) for v in rec["result"].values())


def test_batched_engine_gives_the_sequential_results(wild_model):
    from lamina.runtime.engine import native_available

    if not native_available():
        pytest.skip("lamina._native is not built")
    schema = SCHEMAS["RE"]
    greedy = SamplingParams.greedy(max_tokens=300)
    one = list(extract_many(wild_model, DOCS[:8], task="RE", schema=schema, limits=SMALL,
                            params=greedy))
    many = list(extract_many(wild_model, DOCS[:8], task="RE", schema=schema, limits=SMALL,
                             params=greedy, batch=4))
    assert [r["output"] for r in many] == [r["output"] for r in one]
    assert len({r["output"] for r in one}) > 1


def test_api_extract_result_errors_and_bad_items(ie_model):
    from lamina.errors import SchemaError
    from lamina.ie.api import ExtractionError, extract

    result = lamina.extract(ie_model, "郭碧婷与向佐订婚。", task="NER", schema=["人物", "地点"], limits=SMALL)
    assert list(result) == ["人物", "地点"]
    with pytest.raises(ExtractionError, match="cut off at max_tokens") as info:
        extract(ie_model, "郭碧婷与向佐订婚。", schema=["人物", "地点"],
                params=SamplingParams.greedy(max_tokens=3))
    assert info.value.record["result"] == {"人物": [], "地点": []}
    with pytest.raises(SchemaError, match="empty"):
        extract(ie_model, "  ", schema=["人物"])
    recs = list(lamina.extract_many(ie_model, ["甲文", "", {"id": "z", "text": "乙文"}, 42],
                                      schema=["人物"], limits=SMALL))
    assert [r["id"] for r in recs] == ["1", "2", "z", "4"]
    assert "error" not in recs[0] and "error" not in recs[2]
    assert "empty" in recs[1]["error"] and "int" in recs[3]["error"]
