"""Scores: precision/recall/F1 with DeepKE's IEPile matching rules, ROUGE/BLEU.

Matching follows DeepKE's ``eval_func``: every answer becomes a list of tuples
(NER (entity, type); RE and KG (head, relation, tail); EET (trigger, type);
EE/EEA events (type, trigger) and arguments (type, argument, role), "NAN"
arguments skipped). Tuples match exactly: case-sensitive, no normalisation.
Lists are multisets: a duplicate prediction matches at most one gold tuple
and otherwise counts as a false positive. Answers that do not parse count as
errors and contribute no predictions. Answers for one id (schema chunks) are
pooled before matching.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lamina.runtime.ie.tasks import NAN, get_task

Tuple = tuple[Any, ...]

#: Which tuple levels each task reports, and which tuple field is the "type".
LEVELS: dict[str, tuple[tuple[str, int], ...]] = {
    "NER": (("entity", 1),),
    "RE": (("relation", 1),),
    "KG": (("attribute", 1),),
    "EET": (("trigger", 1),),
    "EE": (("event", 0), ("argument", 0)),
    "EEA": (("event", 0), ("argument", 0)),
}


def _args(arguments: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for role, value in arguments.items() if isinstance(arguments, Mapping) else []:
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v != NAN:
                out.append((v, role))
    return tuple(out)


def tuples_from_result(task: str, result: Any) -> list[Tuple]:
    """Tuples in a structured answer ({type: ...}); wrongly typed parts skipped."""
    name = get_task(task).name
    out: list[Tuple] = []
    if not isinstance(result, Mapping):
        return out
    for key, values in result.items():
        if name == "KG":
            for ent, props in values.items() if isinstance(values, Mapping) else []:
                for attr, value in props.items() if isinstance(props, Mapping) else []:
                    for v in value if isinstance(value, list) else [value]:
                        if isinstance(v, str):
                            out.append((ent, attr, v))
            continue
        if not isinstance(values, list):
            continue
        for v in values:
            if name in ("NER", "EET") and isinstance(v, str):
                out.append((v, key))
            elif name == "RE" and isinstance(v, Mapping):
                s, o = v.get("subject", ""), v.get("object", "")
                if isinstance(s, str) and isinstance(o, str):
                    out.append((s, key, o))
            elif name == "EE" and isinstance(v, Mapping):
                trig = v.get("trigger", "")
                if isinstance(trig, str):
                    out.append((key, trig, _args(v.get("arguments", {}))))
            elif name == "EEA" and isinstance(v, Mapping):
                out.append((key, "", _args(v)))
    return out


def tuples_from_label(task: str, label: Any) -> list[Tuple]:
    """Tuples in an IEPile test ``label`` (the source annotation list)."""
    name = get_task(task).name
    if isinstance(label, str):
        label = json.loads(label)
    if isinstance(label, Mapping):  # an IEPile *output* object used as gold
        return tuples_from_result(name, label)
    out: list[Tuple] = []
    for it in label or []:
        if name == "NER":
            out.append((it["entity"], it["entity_type"]))
        elif name in ("RE", "KG"):
            out.append((it.get("head", ""), it.get("relation", ""), it.get("tail", "")))
        elif name == "EET":
            out.append((it["event_trigger"], it["event_type"]))
        else:
            args = tuple((a["argument"], a["role"]) for a in it.get("arguments", []))
            trig = it.get("event_trigger", "") if name == "EE" else ""
            out.append((it["event_type"], trig, args))
    return out


def split_levels(task: str, tuples: Sequence[Tuple]) -> dict[str, list[Tuple]]:
    """EE/EEA tuples -> event and argument tuples; other tasks have one level."""
    name = get_task(task).name
    if name not in ("EE", "EEA"):
        return {LEVELS[name][0][0]: list(tuples)}
    events, args = [], []
    for etype, trig, arguments in tuples:
        events.append((etype, trig))
        args.extend((etype, a, role) for a, role in arguments)
    return {"event": events, "argument": args}


@dataclass
class PRF:
    """Counts behind precision, recall and F1."""

    tp: int = 0
    pred: int = 0
    gold: int = 0

    def add(self, gold: Sequence[Tuple], pred: Sequence[Tuple]) -> None:
        remaining = Counter(gold)
        self.gold += len(gold)
        self.pred += len(pred)
        for p in pred:
            if remaining[p] > 0:
                remaining[p] -= 1
                self.tp += 1

    def scores(self) -> dict[str, float | int]:
        p = self.tp / self.pred if self.pred else 0.0
        r = self.tp / self.gold if self.gold else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"P": round(100 * p, 2), "R": round(100 * r, 2), "F1": round(100 * f, 2),
                "tp": self.tp, "pred": self.pred, "gold": self.gold}


@dataclass
class Scorer:
    """Micro P/R/F1 for each level of one task, overall and per type."""

    task: str
    records: int = 0
    errors: int = 0
    total: dict[str, PRF] = field(default_factory=lambda: defaultdict(PRF))
    per_type: dict[str, dict[str, PRF]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(PRF)))

    def add(self, gold: Sequence[Tuple], pred: Sequence[Tuple], error: bool = False) -> None:
        self.records += 1
        self.errors += int(error)
        type_fields = dict(LEVELS[get_task(self.task).name])
        gold_levels, pred_levels = split_levels(self.task, gold), split_levels(self.task, pred)
        for level in type_fields:
            g, p = gold_levels.get(level, []), pred_levels.get(level, [])
            self.total[level].add(g, p)
            idx = type_fields[level]
            by_g: dict[str, list[Tuple]] = defaultdict(list)
            by_p: dict[str, list[Tuple]] = defaultdict(list)
            for t in g:
                by_g[str(t[idx])].append(t)
            for t in p:
                by_p[str(t[idx])].append(t)
            for typ in sorted(set(by_g) | set(by_p)):
                self.per_type[level][typ].add(by_g[typ], by_p[typ])

    def report(self) -> dict[str, Any]:
        levels = {}
        for level, _ in LEVELS[get_task(self.task).name]:
            levels[level] = {**self.total[level].scores(),
                             "per_type": {t: c.scores() for t, c in self.per_type[level].items()}}
        return {"task": self.task, "records": self.records, "errors": self.errors,
                "levels": levels}


def parse_prediction(task: str, output: Any) -> tuple[list[Tuple], bool]:
    """DeepKE's reading of one raw answer: strict JSON object or an error."""
    if isinstance(output, Mapping):
        return tuples_from_result(task, output), True
    try:
        data = json.loads(str(output).strip())
    except json.JSONDecodeError:
        return [], False
    if not isinstance(data, dict):
        return [], False
    return tuples_from_result(task, data), True


def score_f1(task: str, records: Iterable[tuple[list[Tuple], list[Any], str | None]],
             ) -> dict[str, Any]:
    """Score (gold tuples, raw answers, source) per id; with per-source breakdown."""
    total = Scorer(task)
    by_source: dict[str, Scorer] = {}
    for gold, answers, source in records:
        preds: list[Tuple] = []
        error = False
        for answer in answers:
            tuples, ok = parse_prediction(task, answer)
            preds.extend(tuples)
            error = error or not ok
        total.add(gold, preds, error)
        if source is not None:
            by_source.setdefault(source, Scorer(task)).add(gold, preds, error)
    report = total.report()
    if by_source:
        report["by_source"] = {s: sc.report() for s, sc in sorted(by_source.items())}
    return report


def _tokens(text: str) -> list[str]:
    import jieba

    return [t for t in jieba.cut(text) if t.strip()]


def rouge_bleu(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F and BLEU-4 (x100) over jieba tokens, as seed 000 scores
    the "类别_实体&..." answers. Empty vs empty scores 100, empty vs text 0."""
    from lamina.errors import require

    for module in ("jieba", "rouge_chinese", "nltk"):
        require(module, "eval")
    import logging

    import jieba
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    jieba.setLogLevel(logging.WARNING)
    rouge, smooth = Rouge(), SmoothingFunction().method3
    sums = {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0, "bleu-4": 0.0}
    n = 0
    for pred, gold in pairs:
        n += 1
        hyp, ref = _tokens(pred or ""), _tokens(gold or "")
        if not hyp or not ref:
            same = float(not hyp and not ref)
            for k in sums:
                sums[k] += same
            continue
        scores = rouge.get_scores(" ".join(hyp), " ".join(ref))[0]
        for k in ("rouge-1", "rouge-2", "rouge-l"):
            sums[k] += scores[k]["f"]
        sums["bleu-4"] += sentence_bleu([ref], hyp, smoothing_function=smooth)
    return {k: round(100 * v / n, 4) if n else 0.0 for k, v in sums.items()} | {"records": n}
