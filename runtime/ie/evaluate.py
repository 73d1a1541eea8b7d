"""Score an extraction output file against gold labels (``lamina eval``).

Predictions are the JSONL records ``lamina extract`` writes (``id``,
``output``...); gold comes from a separate JSONL (``--gold``: IEPile test
records with ``label``, or records with an IEPile ``output``) or from the
``label`` field the predictions carried through from an IEPile test file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamina.errors import FormatError, InputError
from lamina.files import require_file
from lamina.runtime.ie.metrics import Tuple, rouge_bleu, score_f1, tuples_from_label
from lamina.runtime.ie.parse import parse_pairs
from lamina.runtime.ie.tasks import get_task

METRICS = ("f1", "rouge", "bleu")


def read_jsonl(path: str | os.PathLike[str], what: str) -> list[dict[str, Any]]:
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
            if "id" not in data:
                raise FormatError(f"{p}:{lineno} has no 'id' field.",
                                  hint="Predictions and gold records are matched by id.")
            records.append(data)
    if not records:
        raise InputError(f"The {what} '{p}' holds no records.")
    return records


def _gold_of(record: dict[str, Any], key: str) -> Any:
    for field in (key, "label", "output", "result"):
        if field in record and record[field] is not None:
            return record[field]
    return None


def parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise InputError(f"Unknown metric(s): {', '.join(bad) or text!r}.",
                         hint="Use f1, or rouge,bleu (or all three: f1,rouge,bleu).")
    return names


def evaluate_files(pred: str | os.PathLike[str], gold: str | os.PathLike[str] | None = None, *,
                   task: str = "NER", metrics: Sequence[str] = ("f1",),
                   sort_by: str | None = None, style: str = "iepile") -> dict[str, Any]:
    """P/R/F1 (and ROUGE/BLEU) of a predictions file; see module docstring."""
    name = get_task(task).name
    preds = read_jsonl(pred, "predictions file")
    gold_by_id: dict[str, dict[str, Any]] = {}
    if gold is not None:
        for rec in read_jsonl(gold, "gold file"):
            gold_by_id.setdefault(str(rec["id"]), rec)
        unknown = sorted({str(p["id"]) for p in preds} - set(gold_by_id))
        if unknown:
            raise FormatError(
                f"{len(unknown)} prediction id(s) are not in the gold file "
                f"(e.g. {', '.join(unknown[:3])}).",
                hint="Check that --pred and --gold come from the same data set.")
    grouped: dict[str, dict[str, Any]] = {}
    for p in preds:
        pid = str(p["id"])
        entry = grouped.setdefault(pid, {"answers": [], "gold": gold_by_id.get(pid, p)})
        entry["answers"].append(p.get("output", ""))
    missing = sorted(set(gold_by_id) - set(grouped))
    for gid in missing:  # gold records nobody predicted: scored as empty answers
        grouped[gid] = {"answers": ["{}" if style == "iepile" else ""], "gold": gold_by_id[gid]}

    report: dict[str, Any] = {"task": name, "pred": str(pred), "gold": str(gold) if gold else None,
                              "missing_predictions": len(missing)}
    if "f1" in metrics:
        rows = []
        for pid, entry in grouped.items():
            g = _gold_of(entry["gold"], "label") if gold is not None \
                else entry["gold"].get("label")
            if g is None:
                raise FormatError(f"Record {pid} has no gold label ('label' or 'output').",
                                  hint="Pass --gold FILE with the annotations.")
            source = str(entry["gold"].get(sort_by, "None")) if sort_by else None
            if style == "pairs":
                gold_t = _pair_tuples(g)
                answers = [{k: v for k, v in parse_pairs(str(a)).result.items()}
                           for a in entry["answers"]]
            else:
                gold_t = _label_tuples(name, g, pid)
                answers = entry["answers"]
            rows.append((gold_t, answers, source))
        report["f1"] = score_f1("NER" if style == "pairs" else name, rows)
    if "rouge" in metrics or "bleu" in metrics:
        pairs = []
        for pid, entry in grouped.items():
            g = _gold_of(entry["gold"], "output") if gold is not None \
                else entry["gold"].get("label")
            if g is None:
                raise FormatError(f"Record {pid} has no gold text ('output' or 'label').",
                                  hint="Pass --gold FILE with the reference answers.")
            gold_text = g if isinstance(g, str) else json.dumps(g, ensure_ascii=False)
            pairs.append(("\n".join(str(a) for a in entry["answers"]), gold_text))
        report["text"] = rouge_bleu(pairs)
    return report


def _label_tuples(task: str, label: Any, pid: str) -> list[Tuple]:
    try:
        return tuples_from_label(task, label)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise FormatError(f"The gold label of record {pid} does not fit task {task} ({exc}).",
                          hint="Check --task, and that labels are IEPile lists or output objects.") from exc


def _pair_tuples(label: Any) -> list[Tuple]:
    text = label if isinstance(label, str) else ""
    return [(ent, cat) for cat, ents in parse_pairs(text).result.items() for ent in ents]


def default_out(pred: Path) -> Path:
    return pred.with_name(pred.stem + ".eval.json")
