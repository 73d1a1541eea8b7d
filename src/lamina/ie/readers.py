"""Chunk answers and gold labels as tuples, by DeepKE's IEPile evaluation rules.

Published IEPile/OneKE scores come from DeepKE's ``ie2instruction/eval_func.py``;
a lamina score is only comparable with them if every answer is read the same
way, quirks included. The rules, restated (DeepKE is not a dependency):

* An answer is strict JSON: ``json.loads`` of the whole string must give an
  object. Chatter, code fences, single quotes, a list, or a non-JSON space such
  as U+3000 before the ``{`` make the chunk unparsable: it counts as one error
  and gives no tuples. There is no salvaging and no schema filtering: a type
  the schema did not ask for still counts as a prediction.
* Inside a parsed answer, a wrongly typed part is skipped, the rest is kept:
  NER/EET ``{type: [text]}`` -> (text, type); RE ``{relation: [{head, tail}]}``
  -> (head, relation, tail); EE and EEA ``{type: [{trigger, arguments}]}`` ->
  (type, trigger, ((value, role), ...)), with a missing trigger read as ""
  (also for EEA, whose gold trigger is always ""), "NAN" values dropped and
  other values kept whatever their JSON type; KG ``{type: {entity: {attr:
  value}}}`` -> (type, entity, {attr: value}), values "无"/"nan" dropped.
* Where DeepKE would crash (EE arguments that are not an object, a KG value
  list holding a non-string) lamina reads no arguments / skips the item.

``fixes`` (see ``fixes.py``) switch on the corrected readings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from lamina.ie.tasks import NAN, get_task

Tuple = tuple[Any, ...]
Reader = Callable[[Mapping[str, Any], Collection[str]], list[Tuple]]


class LabelError(ValueError):
    """A gold label that does not have the fields DeepKE reads for the task."""


def read_answer(task: str, output: Any, fixes: Collection[str] = ()) -> tuple[bool, list[Tuple]]:
    """(parsed, tuples) of one chunk answer; a Mapping counts as already parsed."""
    if isinstance(output, Mapping):
        data: Any = output
    elif isinstance(output, str):
        try:
            data = json.loads(output)
        except (json.JSONDecodeError, RecursionError):
            return False, []
    else:
        return False, []
    if not isinstance(data, Mapping):
        return False, []
    return True, READERS[get_task(task).name](data, fixes)


def _typed_texts(data: Mapping[str, Any], fixes: Collection[str]) -> list[Tuple]:
    """NER and EET: ``{type: [text, ...]}`` -> (text, type)."""
    out: list[Tuple] = []
    for key, values in data.items():
        if isinstance(key, str) and isinstance(values, list):
            out.extend((v, key) for v in values if isinstance(v, str))
    return out


def _relations(data: Mapping[str, Any], fixes: Collection[str]) -> list[Tuple]:
    """RE: (head, relation, tail); DeepKE reads head/tail, IEPile models write
    subject/object, so without ``re-subject-object`` those become ("", rel, "")."""
    first, second = ("subject", "object") if "re-subject-object" in fixes else ("head", "tail")
    out: list[Tuple] = []
    for key, values in data.items():
        if not isinstance(key, str) or not isinstance(values, list):
            continue
        for rel in values:
            if not isinstance(rel, Mapping):
                continue
            head, tail = rel.get(first, ""), rel.get(second, "")
            if isinstance(head, str) and isinstance(tail, str):
                out.append((head, key, tail))
    return out


def _events(data: Mapping[str, Any], fixes: Collection[str]) -> list[Tuple]:
    """EE and EEA: (type, trigger, ((value, role), ...)); a non-string trigger
    drops the whole event, as in DeepKE."""
    out: list[Tuple] = []
    for key, values in data.items():
        if not isinstance(key, str) or not isinstance(values, list):
            continue
        for event in values:
            if not isinstance(event, Mapping):
                continue
            trigger = event.get("trigger", "")
            if not isinstance(trigger, str):
                continue
            arguments = event.get("arguments", {})
            args = []
            for role, value in arguments.items() if isinstance(arguments, Mapping) else ():
                args.extend((v, role) for v in (value if isinstance(value, list) else [value])
                            if v != NAN)
            out.append((key, trigger, tuple(args)))
    return out


def _absent(value: str) -> bool:
    return value == "无" or value.lower() == "nan"


def _kg(data: Mapping[str, Any], fixes: Collection[str]) -> list[Tuple]:
    """KG: DeepKE's (type, entity, {attr: value}) records, which can never equal a
    gold (head, relation, tail); with ``kg-triples``, (entity, attr, value)."""
    out: list[Tuple] = []
    for etype, entities in data.items():
        if not isinstance(etype, str) or not isinstance(entities, Mapping):
            continue
        for entity, attrs in entities.items():
            if not isinstance(entity, str) or not isinstance(attrs, Mapping):
                continue
            kept: dict[str, Any] = {}
            for attr, value in attrs.items():
                if isinstance(value, list):
                    values = [v for v in value if isinstance(v, str) and not _absent(v)]
                    if values:
                        kept[attr] = values
                elif isinstance(value, str) and not _absent(value):
                    kept[attr] = value
            if "kg-triples" not in fixes:
                out.append((etype, entity, kept))
                continue
            for attr, value in kept.items():
                out.extend((entity, attr, v) for v in (value if isinstance(value, list) else [value]))
    return out


READERS: dict[str, Reader] = {"NER": _typed_texts, "EET": _typed_texts, "RE": _relations,
                              "KG": _kg, "EE": _events, "EEA": _events}


def read_label(task: str, label: Any, fixes: Collection[str] = ()) -> list[Tuple]:
    """Gold tuples of an IEPile ``label`` (a list of annotations, or its JSON text).

    The fields DeepKE indexes directly are required (LabelError names the one
    missing); head/relation/tail default to "" as in DeepKE. An object instead
    of a list is an IEPile *output* used as gold and is read like an answer.
    """
    name = get_task(task).name
    if isinstance(label, str):
        try:
            label = json.loads(label)
        except json.JSONDecodeError as exc:
            raise LabelError(f"the label is not valid JSON: {exc.msg}") from exc
    if isinstance(label, Mapping):
        return READERS[name](label, fixes)
    if not isinstance(label, list):
        raise LabelError(f"the label is a JSON {type(label).__name__}, not a list")
    out: list[Tuple] = []
    for item in label:
        if not isinstance(item, Mapping):
            raise LabelError(f"a label item is a JSON {type(item).__name__}, not an object")
        out.append(_label_tuple(name, item))
    return out


def _field(item: Mapping[str, Any], key: str) -> Any:
    if key not in item:
        raise LabelError(f"a label item has no '{key}' field")
    return item[key]


def _label_tuple(name: str, item: Mapping[str, Any]) -> Tuple:
    if name == "NER":
        return (_field(item, "entity"), _field(item, "entity_type"))
    if name == "EET":
        return (_field(item, "event_trigger"), _field(item, "event_type"))
    if name in ("RE", "KG"):
        return (item.get("head", ""), item.get("relation", ""), item.get("tail", ""))
    arguments = _field(item, "arguments")
    if not isinstance(arguments, list):
        raise LabelError("a label item's 'arguments' is not a list")
    args = []
    for arg in arguments:
        if not isinstance(arg, Mapping):
            raise LabelError("a label argument is not an object")
        args.append((_field(arg, "argument"), _field(arg, "role")))
    trigger = _field(item, "event_trigger") if name == "EE" else ""
    return (_field(item, "event_type"), trigger, tuple(args))
