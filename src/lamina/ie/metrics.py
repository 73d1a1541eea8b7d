"""Micro precision/recall/F1 with DeepKE's IEPile counting and rounding; ROUGE/BLEU.

Counting follows DeepKE's ``eval/metric``: per instance (all chunk answers of
one record pooled, see ``readers.py`` for the tuples), the predicted tuples
match the gold ones as multisets with no dedup: a prediction matches at most
one equal gold tuple, and a duplicate without a gold partner is a false
positive. EE/EEA split each event into an event tuple (type, trigger) and
argument tuples (type, value, role) pooled over the instance, so an argument
matches whichever event of its type it was given to. Counts sum over
instances (micro).

Rounding is DeepKE's too, so the printed digits agree: P and R are
``round(tp / n * 100, 2)`` and F1 is computed from those *rounded* values and
rounded again (tp 1, pred 6, gold 1 gives F1 28.58, where the exact value
rounds to 28.57).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lamina.ie.readers import Tuple, read_answer
from lamina.ie.tasks import get_task

#: The tuple levels each task reports.
LEVELS: dict[str, tuple[str, ...]] = {
    "NER": ("entity",), "RE": ("relation",), "KG": ("attribute",), "EET": ("trigger",),
    "EE": ("event", "argument"), "EEA": ("event", "argument"),
}


def type_index(task: str, fixes: Collection[str] = ()) -> int | None:
    """Which tuple field is the "type" for the per-type breakdown (None: none).

    DeepKE's KG tuples have no type shared by answers and labels, so without
    ``kg-triples`` the KG breakdown would compare unrelated groups; it is left out.
    """
    name = get_task(task).name
    if name in ("EE", "EEA"):
        return 0
    if name == "KG" and "kg-triples" not in fixes:
        return None
    return 1


def count_matches(gold: Sequence[Tuple], pred: Sequence[Tuple]) -> int:
    """True positives of two multisets, by equality (tuples may hold dicts)."""
    remaining = list(gold)
    tp = 0
    for p in pred:
        if p in remaining:
            remaining.remove(p)
            tp += 1
    return tp


def percent(part: float, whole: float) -> float:
    """DeepKE's ``round(part / whole * 100, 2)``, 0.0 for an empty whole."""
    return round(part / whole * 100, 2) if whole else 0.0


def f1_score(p: float, r: float) -> float:
    """F1 of two already rounded percentages, rounded again (DeepKE)."""
    return round(2 * p * r / (p + r), 2) if p + r else 0.0


def split_levels(task: str, tuples: Sequence[Tuple]) -> dict[str, list[Tuple]]:
    """EE/EEA tuples -> event and argument tuples; other tasks have one level."""
    name = get_task(task).name
    if name not in ("EE", "EEA"):
        return {LEVELS[name][0]: list(tuples)}
    events, args = [], []
    for etype, trig, arguments in tuples:
        events.append((etype, trig))
        args.extend((etype, value, role) for value, role in arguments)
    return {"event": events, "argument": args}


@dataclass
class PRF:
    """Counts behind precision, recall and F1."""

    tp: int = 0
    pred: int = 0
    gold: int = 0

    def add(self, gold: Sequence[Tuple], pred: Sequence[Tuple]) -> None:
        self.gold += len(gold)
        self.pred += len(pred)
        self.tp += count_matches(gold, pred)

    def scores(self) -> dict[str, float | int]:
        p, r = percent(self.tp, self.pred), percent(self.tp, self.gold)
        return {"P": p, "R": r, "F1": f1_score(p, r),
                "tp": self.tp, "pred": self.pred, "gold": self.gold}


@dataclass
class Scorer:
    """Micro P/R/F1 for each level of one task, overall and per type.

    ``records`` counts instances, ``errors`` unparsable chunk answers (DeepKE
    counts an error per chunk, so one instance can add several).
    """

    task: str
    fixes: Collection[str] = ()
    records: int = 0
    errors: int = 0
    total: dict[str, PRF] = field(default_factory=lambda: defaultdict(PRF))
    per_type: dict[str, dict[str, PRF]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(PRF)))

    def add(self, gold: Sequence[Tuple], pred: Sequence[Tuple], errors: int = 0) -> None:
        self.records += 1
        self.errors += errors
        idx = type_index(self.task, self.fixes)
        gold_levels, pred_levels = split_levels(self.task, gold), split_levels(self.task, pred)
        for level in LEVELS[get_task(self.task).name]:
            g, p = gold_levels.get(level, []), pred_levels.get(level, [])
            self.total[level].add(g, p)
            if idx is None:
                continue
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
        for level in LEVELS[get_task(self.task).name]:
            levels[level] = {**self.total[level].scores(),
                             "per_type": {t: c.scores() for t, c in self.per_type[level].items()}}
        return {"task": self.task, "records": self.records, "errors": self.errors,
                "levels": levels}


def score_f1(task: str, records: Iterable[tuple[Sequence[Tuple], Sequence[Any], str | None]],
             fixes: Collection[str] = ()) -> dict[str, Any]:
    """Score (gold tuples, chunk answers, source) per instance, with a per-source
    breakdown (sources sorted, as DeepKE prints them)."""
    total = Scorer(task, fixes)
    by_source: dict[str, Scorer] = {}
    for gold, answers, source in records:
        preds: list[Tuple] = []
        errors = 0
        for answer in answers:
            ok, tuples = read_answer(task, answer, fixes)
            preds.extend(tuples)
            errors += not ok
        total.add(gold, preds, errors)
        if source is not None:
            by_source.setdefault(source, Scorer(task, fixes)).add(gold, preds, errors)
    report = total.report()
    if by_source:
        report["by_source"] = {s: sc.report() for s, sc in sorted(by_source.items())}
    return report


#: What seed 000 scores in place of an answer that is empty (or cuts into no words).
EMPTY_ANSWER = "*****"
TEXT_METRICS = ("rouge-1", "rouge-2", "rouge-l", "bleu-4")


def seed000_scores(preds: Sequence[Any], labels: Sequence[Any]) -> dict[str, Any]:
    """Mean ROUGE-1/2/L F and BLEU-4 (x100) computed as seed 000's
    ``compute_metrics(decoded_preds, decoded_labels)`` computes them.

    Per pair: the words are ``jieba.cut(str(x))`` joined by spaces, and a
    falsy answer, or one that cuts into no words, is the one word ``*****``;
    ROUGE is rouge_chinese's ``Rouge().get_scores(pred words, label words)``
    F; BLEU-4 is nltk's ``sentence_bleu([list(label)], list(pred),
    SmoothingFunction().method3)`` over *characters*, on the unreplaced
    strings. Each value is ``round(x * 100, 4)``. A pair where the
    computation raises (rouge_chinese refuses a hypothesis of only
    whitespace; BLEU needs strings) adds nothing to the metrics it had not
    reached, as the seed's try/except leaves it; ``skipped`` says which and
    why. The means are numpy's, over the values each metric got (None when a
    metric got none).
    """
    from lamina.errors import require

    for module in ("jieba", "rouge_chinese", "nltk"):
        require(module, "eval")
    import logging
    import warnings

    import jieba
    import numpy as np
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    jieba.setLogLevel(logging.WARNING)
    rouge, smooth = Rouge(), SmoothingFunction().method3
    values: dict[str, list[float]] = {k: [] for k in TEXT_METRICS}
    skipped: list[dict[str, Any]] = []

    def words(x: Any) -> str:
        cut = list(jieba.cut(str(x))) if x else []
        return " ".join(cut or [EMPTY_ANSWER])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns about zero n-gram counts
        for n, (pred, label) in enumerate(zip(preds, labels, strict=True)):
            try:
                result = rouge.get_scores(words(pred), words(label))[0]
                for k, v in result.items():
                    values[k].append(round(v["f"] * 100, 4))
                bleu = sentence_bleu([list(label)], list(pred), smoothing_function=smooth)
                values["bleu-4"].append(round(bleu * 100, 4))
            except Exception as exc:  # the seed's own rule: drop what did not compute
                skipped.append({"index": n, "error": f"{type(exc).__name__}: {exc}"})
    means = {k: float(np.mean(v)) if v else None for k, v in values.items()}
    return {**means, "records": len(preds), "scored": {k: len(v) for k, v in values.items()},
            "skipped": skipped}
