"""Score an extraction output file against gold labels (``lamina eval``).

Predictions are records with ``id`` and ``output`` (one per schema chunk, as
``lamina extract`` and DeepKE's IEPile test files have them), as JSON Lines or
a JSON array; or seed 000's answer file, a JSON array of ``{"ori_answer",
"gen_answer"}`` (gold and generated answer; scored with its ROUGE/BLEU by
default). Lines are grouped into instances the way DeepKE's ``eval_func.py``
does: by the string ``source + id`` (``source`` defaults to "None"), the
label and the ``--sort-by`` value taken from the first line of the group.
Gold comes from that ``label``, or from a separate file (``--gold``: any
record shape ``lamina.ie.inputs`` reads, e.g. IEPile test records with
``label``, IEPile train records, raw annotations, seed 000's pairs), which
DeepKE has no counterpart for: there a prediction finds its gold record by
source + id, or by id alone when it carries no matching source.
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
from lamina.ie.inputs import BadLine, read_records, read_values
from lamina.ie.metrics import score_f1, seed000_scores
from lamina.ie.parse import parse_pairs
from lamina.ie.readers import LabelError, Tuple, read_label
from lamina.ie.tasks import get_task

METRICS = ("f1", "rouge", "bleu")
Key = str | tuple[str, str]
#: seed 000's answer file: one record per example, gold and generated answer.
SEED000_FIELDS = ("ori_answer", "gen_answer")
#: How many bad records one error message lists before "and N more".
LISTED = 10

_HINTS = {"id": "Predictions and gold records are matched by id.",
          "output": "Each prediction line needs the model's answer in 'output'."}


def _bad_text(p: Path, bad: BadLine) -> str:
    """``file:line reason`` for line-based files, ``file record N (line L) reason`` else."""
    if bad.record is None:
        head = f"line {bad.line} "
        rest = bad.reason[len(head):] if bad.reason.startswith(head) else bad.reason
        return f"{p}:{bad.line} {rest}"
    return f"{p} {bad.reason}"


def _raise_bad(p: Path, bad: list[BadLine], hint: str | None) -> None:
    if not bad:
        return
    listed = "; ".join(_bad_text(p, b) for b in bad[:LISTED])
    more = f"; and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
    lead = "" if len(bad) == 1 else f"{len(bad)} bad records: "
    raise FormatError(f"{lead}{listed}{more}.", hint=hint)


def read_predictions(path: str | os.PathLike[str],
                     validate: Callable[[dict[str, Any]], str | None] | None = None,
                     ) -> tuple[list[dict[str, Any]], str]:
    """Prediction records and their layout ("records", or "seed000" for seed 000's
    ``ori_answer``/``gen_answer`` file, turned into ``id``/``output``/``label``).
    Every bad record is named in one error; nothing is scored from a broken file."""
    p = require_file(path, "predictions file")
    records: list[dict[str, Any]] = []
    bad: list[BadLine] = []
    layout: str | None = None
    hint = "Fix or remove those records; every record must be one JSON object."
    for entry in read_values(p, "predictions file"):
        if isinstance(entry, BadLine):
            bad.append(entry)
            continue
        line, pos, data = entry
        where = f"line {line}" if pos is None else f"record {pos} (line {line})"
        if not isinstance(data, dict):
            kind = "list" if isinstance(data, list) else type(data).__name__
            bad.append(BadLine(line, f"{where} is a JSON {kind}, not an object",
                               json.dumps(data, ensure_ascii=False), pos))
            continue
        if layout is None:
            layout = "seed000" if all(k in data for k in SEED000_FIELDS) else "records"
        if layout == "seed000":
            missing = [k for k in SEED000_FIELDS if k not in data]
            if missing:
                bad.append(BadLine(line, f"{where} has no '{missing[0]}' field (seed 000's "
                                   "answer file has ori_answer and gen_answer)", "", pos))
                continue
            records.append({**data, "id": str(data.get("id", pos if pos is not None else line)),
                            "output": data["gen_answer"], "label": data["ori_answer"]})
            continue
        missing_key = next((k for k in ("id", "output") if k not in data), None)
        reason = f"has no '{missing_key}' field" if missing_key else None
        if reason is None and validate is not None:
            reason = validate(data)
        if reason is not None:
            if not bad and missing_key:
                hint = _HINTS[missing_key]
            bad.append(BadLine(line, f"{where} {reason}", json.dumps(data, ensure_ascii=False),
                               pos))
            continue
        records.append(data)
    _raise_bad(p, bad, hint)
    if not records:
        raise InputError(f"The predictions file '{p}' holds no records.")
    return records, layout or "records"


def read_gold(path: str | os.PathLike[str], task: str | None) -> list[dict[str, Any]]:
    """Gold records in any shape the input reader knows; bad ones are one error."""
    p = require_file(path, "gold file")
    records, bad = [], []
    for item in read_records(p, task=task, need="any", what="gold file"):
        (bad if isinstance(item, BadLine) else records).append(item)
    _raise_bad(p, bad, "Fix or remove those records.")
    if not records:
        raise InputError(f"The gold file '{p}' holds no records.")
    return records


def resolve_task(task: str | None, *record_lists: Sequence[dict[str, Any]]) -> str:
    """The task to score: ``--task``, else the one the records name (NER if none);
    records that name another task than the one scored are an error."""
    named: dict[str, int] = {}
    for records in record_lists:
        for r in records:
            if isinstance(r.get("task"), str):
                name = get_task(r["task"]).name
                named[name] = named.get(name, 0) + 1
    if task is not None:
        name = get_task(task).name
        others = sorted(t for t in named if t != name)
        if others:
            raise InputError(f"--task is {name}, but {sum(named[t] for t in others)} record(s) "
                             f"name task {', '.join(others)}.",
                             hint="Score each task's records separately.")
        return name
    if len(named) > 1:
        raise InputError(f"The records name several tasks ({', '.join(sorted(named))}).",
                         hint="Score each task's records separately (--task picks one).")
    return next(iter(named), "NER")


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
                   task: str | None = None, metrics: Sequence[str] | None = None,
                   sort_by: str | None = None, style: str | None = None,
                   fixes: Collection[str] = ()) -> dict[str, Any]:
    """P/R/F1 (DeepKE's numbers unless ``fixes``) and seed 000's ROUGE/BLEU of a
    predictions file.

    ``task`` defaults to the one the records name (NER if none); ``metrics`` to
    rouge+bleu for seed 000's answer file, else f1; ``style`` to pairs for
    seed 000's files (its answer file, or records carrying its free-text
    instruction), else iepile.
    """
    preds, layout = read_predictions(pred, _check_output)
    golds = read_gold(gold, task) if gold is not None else None
    name = resolve_task(task, preds, golds or [])
    fixes = parse_fixes(fixes, name)
    if metrics is None:
        metrics = ("rouge", "bleu") if layout == "seed000" else ("f1",)
    if style is None:
        style = "pairs" if layout == "seed000" or _has_free_instruction(preds) else "iepile"
    grouped, missing = _group(preds, golds, "instance-key" in fixes, style)
    label_fields = ("label", "output", "result") if golds is not None else ("label",)

    report: dict[str, Any] = {"task": name, "pred": str(pred), "gold": str(gold) if gold else None,
                              "layout": layout, "format": style, "fixes": list(fixes),
                              "missing_predictions": missing}
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
        answers_text, golds_text = [], []
        for entry in grouped.values():
            first = entry["first"]
            g = _gold_of(first, label_fields) if layout != "seed000" else first["label"]
            if g is None and layout != "seed000":
                raise FormatError(f"Record {_name(first)} has no gold text ('output' or 'label').",
                                  hint="Pass --gold FILE with the reference answers.")
            golds_text.append(_as_text(g))
            got = entry["answers"]
            answers_text.append(_as_text(got[0]) if len(got) == 1 else
                                "\n".join(str(_as_text(a)) for a in got))
        # Seed 000's test.py calls compute_metrics(ori_answers, gen_answers): the gold
        # sits in the prediction slot. Its numbers need that order; --fix text-order
        # scores the model's answer as the hypothesis instead.
        if "text-order" in fixes:
            report["text"] = seed000_scores(answers_text, golds_text)
        else:
            report["text"] = seed000_scores(golds_text, answers_text)
        report["text"]["order"] = "answer-hypothesis" if "text-order" in fixes else "seed000"
    return report


def _as_text(value: Any) -> Any:
    """Answers and gold as seed 000 hands them over: strings (and null) as they are,
    parsed JSON values as their JSON text."""
    return value if value is None or isinstance(value, str) else \
        json.dumps(value, ensure_ascii=False)


def _has_free_instruction(preds: Sequence[dict[str, Any]]) -> bool:
    """Records that carry seed 000's free-text instruction (lamina extract passes a
    record's instruction through) are pair answers."""
    first = preds[0].get("instruction")
    return isinstance(first, str) and not first.lstrip().startswith("{")


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
