"""Score an extraction output file against gold labels (``lamina eval``).

Predictions are JSONL records with ``id`` and ``output`` (one line per schema
chunk, as ``lamina extract`` and DeepKE's IEPile test files have them). Lines
are grouped into instances the way DeepKE's ``eval_func.py`` does: by the
string ``source + id`` (``source`` defaults to "None"), the label and the
``--sort-by`` value taken from the first line of the group. Gold comes from
that ``label``, or from a separate JSONL (``--gold``: IEPile test records with
``label``, or records with an IEPile ``output``), which DeepKE has no
counterpart for: there a prediction finds its gold record by source + id, or
by id alone when it carries no matching source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from lamina.errors import FormatError, InputError
from lamina.files import require_file
from lamina.ie.fixes import parse_fixes
from lamina.ie.metrics import rouge_bleu, score_f1
from lamina.ie.parse import parse_pairs
from lamina.ie.readers import LabelError, Tuple, read_label
from lamina.ie.tasks import get_task

METRICS = ("f1", "rouge", "bleu")
Key = str | tuple[str, str]

_HINTS = {"id": "Predictions and gold records are matched by id.",
          "output": "Each prediction line needs the model's answer in 'output'."}


def read_jsonl(path: str | os.PathLike[str], what: str, required: Sequence[str] = ("id",),
               validate: Callable[[dict[str, Any]], str | None] | None = None,
               ) -> list[dict[str, Any]]:
    """All records of a JSONL file; a bad line is an error naming file and line."""
    p = require_file(path, what)
    records = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"{p}:{lineno} is not valid JSON ({exc.msg}).",
                                  hint="Fix or remove that line; every line must be one JSON object.") from exc
            if not isinstance(data, dict):
                raise FormatError(f"{p}:{lineno} is a JSON {type(data).__name__}, not an object.")
            for key in required:
                if key not in data:
                    raise FormatError(f"{p}:{lineno} has no '{key}' field.", hint=_HINTS.get(key))
            reason = validate(data) if validate else None
            if reason:
                raise FormatError(f"{p}:{lineno} {reason}.")
            records.append(data)
    if not records:
        raise InputError(f"The {what} '{p}' holds no records.")
    return records


def _check_output(record: dict[str, Any]) -> str | None:
    out = record["output"]
    if isinstance(out, (str, dict)):
        return None
    return (f"has an 'output' that is a JSON {type(out).__name__ if out is not None else 'null'}, "
            "not the answer text (or an answer object)")


def instance_key(record: dict[str, Any], by_pair: bool = False) -> Key:
    """DeepKE's instance key ``source + id``; ``(source, id)`` with --fix instance-key."""
    source, rid = str(record.get("source", "None")), str(record["id"])
    return (source, rid) if by_pair else source + rid


def _name(record: dict[str, Any]) -> str:
    src = record.get("source")
    return f"{record['id']}" + (f" (source {src})" if src is not None else "")


def parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise InputError(f"Unknown metric(s): {', '.join(bad) or text!r}.",
                         hint="Use f1, or rouge,bleu (or all three: f1,rouge,bleu).")
    return names


def _group(preds: list[dict[str, Any]], gold: list[dict[str, Any]] | None,
           by_pair: bool, style: str) -> tuple[dict[Key, dict[str, Any]], int]:
    """Instances {key: {"first": record holding label/source, "answers": [...]}} and
    how many gold instances had no prediction (scored as empty answers)."""
    grouped: dict[Key, dict[str, Any]] = {}
    if gold is None:
        for p in preds:
            entry = grouped.setdefault(instance_key(p, by_pair), {"first": p, "answers": []})
            entry["answers"].append(p["output"])
        return grouped, 0
    gold_by_key: dict[Key, dict[str, Any]] = {}
    keys_by_id: dict[str, set[Key]] = {}
    for g in gold:
        key = instance_key(g, by_pair)
        gold_by_key.setdefault(key, g)
        keys_by_id.setdefault(str(g["id"]), set()).add(key)
    unknown = []
    for p in preds:
        key = instance_key(p, by_pair)
        if key not in gold_by_key:
            candidates = keys_by_id.get(str(p["id"]), set())
            if len(candidates) > 1:
                raise FormatError(
                    f"Prediction id {p['id']} is in {len(candidates)} sources of the gold file.",
                    hint="Give each prediction the 'source' field of its gold record.")
            if not candidates:
                unknown.append(str(p["id"]))
                continue
            key = next(iter(candidates))
        entry = grouped.setdefault(key, {"first": gold_by_key[key], "answers": []})
        entry["answers"].append(p["output"])
    if unknown:
        raise FormatError(
            f"{len(unknown)} prediction id(s) are not in the gold file "
            f"(e.g. {', '.join(unknown[:3])}).",
            hint="Check that --pred and --gold come from the same data set.")
    missing = [k for k in gold_by_key if k not in grouped]
    for key in missing:
        grouped[key] = {"first": gold_by_key[key], "answers": ["{}" if style == "iepile" else ""]}
    return grouped, len(missing)


def _gold_of(record: dict[str, Any], fields: Sequence[str]) -> Any:
    for name in fields:
        if record.get(name) is not None:
            return record[name]
    return None


def evaluate_files(pred: str | os.PathLike[str], gold: str | os.PathLike[str] | None = None, *,
                   task: str = "NER", metrics: Sequence[str] = ("f1",),
                   sort_by: str | None = None, style: str = "iepile",
                   fixes: Collection[str] = ()) -> dict[str, Any]:
    """P/R/F1 (DeepKE's numbers unless ``fixes``) and ROUGE/BLEU of a predictions file."""
    name = get_task(task).name
    fixes = parse_fixes(fixes, name)
    preds = read_jsonl(pred, "predictions file", ("id", "output"), _check_output)
    golds = read_jsonl(gold, "gold file") if gold is not None else None
    grouped, missing = _group(preds, golds, "instance-key" in fixes, style)
    label_fields = ("label", "output", "result") if golds is not None else ("label",)

    report: dict[str, Any] = {"task": name, "pred": str(pred), "gold": str(gold) if gold else None,
                              "fixes": list(fixes), "missing_predictions": missing}
    if "f1" in metrics:
        rows = []
        for entry in grouped.values():
            first = entry["first"]
            g = _gold_of(first, label_fields)
            if g is None:
                raise FormatError(f"Record {_name(first)} has no gold label ('label' or 'output').",
                                  hint="Pass --gold FILE with the annotations.")
            source = str(first.get(sort_by, "None")) if sort_by else None
            if style == "pairs":
                gold_t = _pair_tuples(g)
                answers: list[Any] = [parse_pairs(str(a)).result for a in entry["answers"]]
            else:
                gold_t = _label_tuples(name, g, first, fixes)
                answers = entry["answers"]
            rows.append((gold_t, answers, source))
        report["f1"] = score_f1("NER" if style == "pairs" else name, rows, fixes)
    if "rouge" in metrics or "bleu" in metrics:
        pairs = []
        for entry in grouped.values():
            first = entry["first"]
            g = _gold_of(first, ("output", "label", "result") if golds is not None else ("label",))
            if g is None:
                raise FormatError(f"Record {_name(first)} has no gold text ('output' or 'label').",
                                  hint="Pass --gold FILE with the reference answers.")
            gold_text = g if isinstance(g, str) else json.dumps(g, ensure_ascii=False)
            answer_text = "\n".join(a if isinstance(a, str) else json.dumps(a, ensure_ascii=False)
                                    for a in entry["answers"])
            pairs.append((answer_text, gold_text))
        report["text"] = rouge_bleu(pairs)
    return report


def _label_tuples(task: str, label: Any, record: dict[str, Any],
                  fixes: Collection[str]) -> list[Tuple]:
    try:
        return read_label(task, label, fixes)
    except LabelError as exc:
        raise FormatError(f"The gold label of record {_name(record)} does not fit task {task}: "
                          f"{exc}.",
                          hint="Check --task, and that labels are IEPile lists or output objects.") from exc


def _pair_tuples(label: Any) -> list[Tuple]:
    text = label if isinstance(label, str) else ""
    return [(ent, cat) for cat, ents in parse_pairs(text).result.items() for ent in ents]


def default_out(pred: Path) -> Path:
    return pred.with_name(pred.stem + ".eval.json")
