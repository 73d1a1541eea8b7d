"""The report's shape and the per-type breakdown, hand-computed.

The DeepKE reference cases pin the totals; these pin what the eval table and
``--json`` also print: the level names, the per-type groups (by which tuple field
each task is grouped) and the optional-dependency error. Written to kill the
mutants of ``benchmarks/mutation.py`` that the totals let through.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from lamina.ie.metrics import Scorer, count_matches, score_f1, seed000_scores


def counts(prf: dict) -> tuple[int, int, int]:
    return prf["tp"], prf["pred"], prf["gold"]


@pytest.mark.parametrize("task, levels", [
    ("NER", ["entity"]), ("RE", ["relation"]), ("KG", ["attribute"]), ("EET", ["trigger"]),
    ("EE", ["event", "argument"]), ("EEA", ["event", "argument"]), ("ner", ["entity"]),
])
def test_each_task_reports_its_levels(task, levels):
    report = score_f1(task, [])
    assert report["task"] == task and report["records"] == 0 and report["errors"] == 0
    assert list(report["levels"]) == levels
    for level in levels:
        assert report["levels"][level] == {"P": 0.0, "R": 0.0, "F1": 0.0, "tp": 0, "pred": 0,
                                           "gold": 0, "per_type": {}}


def test_relations_are_grouped_by_relation():
    s = Scorer("RE")
    s.add(gold=[("甲", "作者", "乙"), ("丙", "国籍", "中国")],
          pred=[("甲", "作者", "乙"), ("丙", "作者", "丁")])
    rel = s.report()["levels"]["relation"]
    assert counts(rel) == (1, 2, 2)
    assert list(rel["per_type"]) == ["作者", "国籍"]
    assert counts(rel["per_type"]["作者"]) == (1, 2, 1)
    assert counts(rel["per_type"]["国籍"]) == (0, 0, 1)
    assert rel["per_type"]["作者"]["P"] == 50.0 and rel["per_type"]["作者"]["R"] == 100.0


def test_entities_are_grouped_by_entity_type():
    s = Scorer("NER")
    s.add(gold=[("北京", "地点"), ("严复", "人物")], pred=[("北京", "地点"), ("北京", "人物")])
    per = s.report()["levels"]["entity"]["per_type"]
    assert {t: counts(c) for t, c in per.items()} == {"人物": (0, 1, 1), "地点": (1, 1, 1)}


@pytest.mark.parametrize("task", ["EE", "EEA"])
def test_events_and_arguments_are_grouped_by_event_type(task):
    s = Scorer(task)
    s.add(gold=[("订婚", "订婚", (("向佐", "主体"),))],
          pred=[("订婚", "订婚", ()), ("坍塌", "垮", (("3", "人数"), ("4", "人数")))])
    levels = s.report()["levels"]
    ev, arg = levels["event"], levels["argument"]
    assert counts(ev) == (1, 2, 1) and counts(arg) == (0, 2, 1)
    assert {t: counts(c) for t, c in ev["per_type"].items()} == {"坍塌": (0, 1, 0),
                                                               "订婚": (1, 1, 1)}
    assert {t: counts(c) for t, c in arg["per_type"].items()} == {"坍塌": (0, 2, 0),
                                                                "订婚": (0, 0, 1)}


def test_kg_has_no_breakdown_unless_scored_as_triples():
    """DeepKE's KG records share no type field between answers and labels."""
    rec = ("人物", "马三立", {"别名": "马桂福"})
    plain = Scorer("KG")
    plain.add(gold=[rec], pred=[rec, ("人物", "x", {})])
    att = plain.report()["levels"]["attribute"]
    assert counts(att) == (1, 2, 1) and att["per_type"] == {}
    triples = Scorer("KG", fixes=("kg-triples",))
    triples.add(gold=[("马三立", "别名", "马桂福"), ("马三立", "职业", "演员")],
                pred=[("马三立", "别名", "马桂福"), ("马三立", "别名", "x")])
    per = triples.report()["levels"]["attribute"]["per_type"]
    assert {t: counts(c) for t, c in per.items()} == {"别名": (1, 2, 1), "职业": (0, 0, 1)}


def test_scorer_counts_records_and_errors():
    s = Scorer("NER")
    s.add([("a", "T")], [("a", "T")])
    s.add([], [], errors=2)
    rep = s.report()
    assert (rep["records"], rep["errors"]) == (2, 2)


def test_matches_compare_tuples_holding_dicts():
    a, b = ("人物", "甲", {"别名": "x"}), ("人物", "甲", {"别名": "y"})
    assert count_matches([a, b], [b, b, a]) == 2
    assert count_matches([], [a]) == 0 and count_matches([a], []) == 0



def test_seed000_scores_are_the_seeds_on_every_kind_of_answer():
    """Exact floats against the seed's computation (tests/ie/test_seed000_metrics.py),
    in both directions: pairs that raise, empty and null answers, rounding."""
    pytest.importorskip("rouge_chinese")
    from tests.ie.test_seed000_metrics import ANSWERS, reference_compute_metrics

    ori, gen = [a for a, _ in ANSWERS], [b for _, b in ANSWERS]
    for preds, labels in ((ori, gen), (gen, ori)):
        got = seed000_scores(preds, labels)
        expected = reference_compute_metrics(preds, labels)
        assert {k: got[k] for k in expected} == expected
        assert got["records"] == len(ANSWERS)
    with pytest.raises(ValueError):  # a silently shortened list would score other pairs
        seed000_scores(ori, gen[:-1])


@pytest.mark.parametrize("module", ["jieba", "rouge_chinese", "nltk"])
def test_seed000_scores_without_a_dependency_name_the_extra_that_installs_it(module,
                                                                            monkeypatch):
    """The install advice names an extra of pyproject.toml that lists the package."""
    from lamina.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, module, None)  # importlib.util.find_spec -> None
    with pytest.raises(MissingDependencyError) as info:
        seed000_scores(["a"], ["a"])
    (extra,) = re.findall(r"lamina\[(\w+)\]", info.value.hint)
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    listed = re.search(rf"^{extra} = \[(.*)\]$", pyproject, flags=re.M)  # tomllib is 3.11+
    assert listed, f"no extra '{extra}' in pyproject.toml"
    packages = {re.split(r"[<>=~!\[ ;]", r, maxsplit=1)[0].lower().replace("-", "_")
                for r in json.loads(f"[{listed.group(1)}]")}
    assert module in packages
