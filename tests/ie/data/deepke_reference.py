"""Recompute the DeepKE numbers in deepke_eval_cases.json (run by hand, not by pytest).

DeepKE is not a dependency of lamina; this script only imports a checkout of it
to score the prediction lines stored in the JSON file, and writes DeepKE's
printed results (and the counts behind them) back into that file:

    git clone https://github.com/zjunlp/DeepKE /tmp/deepke     # outside any worktree
    python -m venv /tmp/deepke/venv && /tmp/deepke/venv/bin/pip install jieba rouge_chinese
    /tmp/deepke/venv/bin/python tests/ie/data/deepke_reference.py /tmp/deepke

Each task is run with ``eval_func.evaluate(--task T --sort_by source)`` under
the variants below. ``deepke`` is DeepKE as published; the others change one
rule by patching DeepKE's classes from here, so that the corrected numbers,
too, come from DeepKE's own counting and rounding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("deepke_eval_cases.json")

#: variant -> (tasks, lamina's --fix names giving the same numbers, what changes in DeepKE)
VARIANTS: dict[str, tuple[tuple[str, ...], list[str], str]] = {
    "deepke": (("NER", "RE", "EE", "EEA", "EET", "KG"), [], "DeepKE as published"),
    "eet-method": (("EET",), [], "EETExtracter.post_process = post_process4 (as published, "
                                 "EET stops with AttributeError: the class has no post_process)"),
    "re-subject-object": (("RE",), ["re-subject-object"],
                          "REExtracter reads subject/object instead of head/tail"),
    "kg-triples": (("KG",), ["kg-triples"], "KGExtracter's (type, entity, {attr: value}) "
                                            "records expanded to (entity, attr, value)"),
    "instance-key": (("NER",), ["instance-key"], "each id prefixed with a tab, so that "
                                                 "source + id keeps (source, id) pairs apart"),
}


def _patches(variant: str) -> list[tuple[type, str, Any]]:
    from eval.extracter.eet_extracter import EETExtracter
    from eval.extracter.kg_extracter import KGExtracter
    from eval.extracter.re_extracter import REExtracter

    if variant == "eet-method":
        return [(EETExtracter, "post_process", EETExtracter.post_process4)]
    if variant == "re-subject-object":
        orig_re = REExtracter.post_process

        def re_subject_object(self: Any, result: str) -> Any:
            try:
                rst = json.loads(result)
            except json.JSONDecodeError:
                return orig_re(self, result)
            if isinstance(rst, dict):
                for key, values in rst.items():
                    if isinstance(values, list):
                        rst[key] = [{new: it[old] for old, new in (("subject", "head"),
                                                                    ("object", "tail")) if old in it}
                                    if isinstance(it, dict) else it for it in values]
            return orig_re(self, json.dumps(rst, ensure_ascii=False))
        return [(REExtracter, "post_process", re_subject_object)]
    if variant == "kg-triples":
        orig_kg = KGExtracter.post_process

        def kg_triples(self: Any, result: str) -> Any:
            flag, records = orig_kg(self, result)
            return flag, [(ent, attr, v) for _type, ent, attrs in records
                          for attr, vals in attrs.items()
                          for v in (vals if isinstance(vals, list) else [vals])]
        return [(KGExtracter, "post_process", kg_triples)]
    return []


def _count_hooks() -> list[dict[str, int]]:
    """Record each metric's tp/pred/gold when it computes (sources first, then total)."""
    from eval.metric.ee_metric import EEMetric
    from eval.metric.ner_metric import NERMetric
    from eval.metric.re_metric import REMetric

    seen: list[dict[str, int]] = []
    fields = {NERMetric: ("tp", "pred_num", "gold_num"), REMetric: ("tp", "pred_num", "gold_num"),
              EEMetric: ("ee_tp", "ee_pred_num", "ee_gold_num", "ag_tp", "ag_pred_num",
                         "ag_gold_num")}
    for cls, names in fields.items():
        def compute_f1(self: Any, _orig: Any = cls.compute_f1, _names: Any = names) -> Any:
            seen.append({n: int(getattr(self, n)) for n in _names})
            return _orig(self)
        cls.compute_f1 = compute_f1
    return seen


def run(task: str, lines: list[dict[str, Any]], variant: str, work: Path,
        seen: list[dict[str, int]]) -> dict[str, Any]:
    import eval_func

    records = [dict(line["record"]) for line in lines]
    if variant == "instance-key":
        records = [dict(r, id="\t" + r["id"]) for r in records]
    path = work / f"{task}-{variant}.json"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    patches = _patches(variant)
    saved = [(cls, name, cls.__dict__.get(name)) for cls, name, _ in patches]
    for cls, name, func in patches:
        setattr(cls, name, func)
    seen.clear()
    opts = argparse.Namespace(path1=str(path), task=task, sort_by="source", match_mode="normal",
                              metrics_list="f1", out_path=str(path) + ".out")
    try:
        eval_func.evaluate(opts)
    except Exception as exc:  # DeepKE itself fails: keep its error as the reference
        return {"error": "".join(traceback.format_exception_only(type(exc), exc)).strip()}
    finally:
        for cls, name, func in saved:
            if func is None:
                delattr(cls, name)
            else:
                setattr(cls, name, func)
    result = json.loads(Path(opts.out_path).read_text(encoding="utf-8"))
    order = [k for k in result if k != "total"] + ["total"]
    return {"deepke": result, "counts": dict(zip(order, seen, strict=True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deepke", type=Path, help="a DeepKE checkout")
    args = parser.parse_args()
    root = args.deepke.resolve()
    ie = root / "example/llm/InstructKGC/ie2instruction"
    os.chdir(ie)
    sys.path.insert(0, str(ie))
    seen = _count_hooks()
    data = json.loads(DATA.read_text(encoding="utf-8"))
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    data["deepke_commit"] = commit or "unknown"
    with tempfile.TemporaryDirectory() as tmp:
        for task, case in data["tasks"].items():
            case["runs"] = []
            for variant, (tasks, fixes, what) in VARIANTS.items():
                if task in tasks:
                    out = run(task, case["lines"], variant, Path(tmp), seen)
                    case["runs"].append({"variant": variant, "changes": what,
                                         "lamina_fixes": fixes, **out})
    DATA.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
