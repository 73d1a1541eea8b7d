"""Raw annotations -> IEPile instruction files (``lamina ie convert``), as seed 002's
``convert_func.py`` makes them, so a user's own annotated set can be trained on
or scored with ``lamina extract`` + ``lamina eval``.

Input records are DeepKE's ``sample.json`` shapes, one per task: ``text`` with
``entity`` (NER: entity, entity_type), ``relation`` (RE and KG: head,
relation, tail; InstructIE's records are this shape) or ``event`` (EE, EET,
EEA: event_type, event_trigger, arguments [{argument, role}]). The schema file
is DeepKE's three JSON lines (types, roles, {type: roles}: NER/EET read the
types, RE the roles, EE/EEA the {type: roles}, KG its first type with the
roles as attributes), or one JSON value (a list of names, or {type: roles});
without one the schema is every type the annotations use, in first-seen order.

* **test** files hold, per record, every schema item in the schema's order,
  chunked by DeepKE's test rule (``split_num``, a short tail joins the last
  chunk); each chunk is one record ``{id, task, source, instruction, label}``
  with ``id`` = sha256 of the text and ``label`` the record's annotations
  (duplicates dropped for NER/RE, as DeepKE does), absent when it has none.
  EEA asks only the event types the record has.
* **train** files hold ``{task, source, instruction, output}`` per chunk. The
  schema items are the record's positive types plus negative ones: each
  other type is kept with probability ``neg_ratio`` (1: all, 0: none), at
  least one when the record has no positive; EE samples the roles the same
  way. ``random_sort`` shuffles the items (and EE's roles); off, they are in
  the documented order, sorted by name. ``hard_negatives`` (DeepKE's cluster
  mode, NER/RE/EET) asks each positive's confusable types plus up to
  ``split_num`` random others. The output is the answer the models are trained
  to give: schema keys in instruction order, values in the order they occur in
  the text, RE as ``{"subject", "object"}`` (IEPile's published form), absent
  event arguments ``"NAN"``.

DeepKE draws from numpy's and Python's generators and lists sets in hash
order; lamina uses one ``random.Random(seed)`` and fixed orders, so a
conversion is the same on every run. SPO (subject/object types) is not
converted: lamina has no SPO task.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina.errors import FormatError, InputError, SchemaError
from lamina.files import atomic_output, require_file
from lamina.ie.inputs import ANNOTATION_FIELDS, BadLine, read_records
from lamina.ie.instructions import build_instruction
from lamina.ie.schema_split import split_schema
from lamina.ie.tasks import NAN, check_lang, get_task

SPLITS = ("train", "test")
#: Tasks whose schema items are plain names (hard negatives apply to them).
LABEL_TASKS = ("NER", "RE", "EET")


@dataclass
class Schema:
    """DeepKE's schema file: type names, role names, and the roles of each type."""

    types: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    type_roles: dict[str, list[str]] = field(default_factory=dict)

    def names(self, task: str) -> list[str]:
        """The names a label task asks for (NER/EET: types, RE: roles)."""
        return self.roles if task == "RE" else self.types

    def event_types(self) -> list[str]:
        return list(dict.fromkeys([*self.type_roles, *self.types]))


@dataclass(frozen=True)
class ConvertOptions:
    """convert_func.py's options; ``split_num`` None means the task's default."""

    task: str
    split: str = "train"
    lang: str = "zh"
    split_num: int | None = None
    random_sort: bool = False
    neg_ratio: float = 1.0
    hard_negatives: Mapping[str, Sequence[str]] | None = None
    seed: int = 42
    source: str | None = None

    def __post_init__(self) -> None:
        name = get_task(self.task).name
        object.__setattr__(self, "task", name)
        check_lang(self.lang)
        if self.split not in SPLITS:
            raise InputError(f"Unknown split '{self.split}'.", hint="Use train or test.")
        if not 0 <= self.neg_ratio <= 1:
            raise InputError(f"The negative ratio must be between 0 and 1, got {self.neg_ratio}.")
        if self.hard_negatives is not None and name not in LABEL_TASKS:
            raise InputError(f"Hard negatives (cluster mode) are for {', '.join(LABEL_TASKS)}, "
                             f"not {name}.")
        if self.hard_negatives is not None and not all(
                isinstance(k, str) and _names(v) for k, v in self.hard_negatives.items()):
            raise InputError("Hard negatives must map each type to a list of type names.",
                             hint='For example {"人物": ["组织机构"]}.')

    @property
    def chunk_size(self) -> int:
        return get_task(self.task).split_num if self.split_num is None else self.split_num


# ---- schema


def load_schema_file(path: str | os.PathLike[str]) -> Schema:
    """DeepKE's three-line schema file, or one JSON list / {type: roles} object."""
    p = require_file(path, "schema file")
    text = p.read_text(encoding="utf-8-sig")
    values = []
    try:
        values = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        try:
            values = [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise FormatError(f"The schema file '{p}' is not JSON ({exc.msg}).",
                              hint="Give DeepKE's three lines (types, roles, {type: roles}) "
                                   "or one JSON list.") from exc
    if len(values) == 1:
        one = values[0]
        if isinstance(one, list):
            values = [one, one, {}]
        elif isinstance(one, dict):
            values = [list(one), sorted({r for v in one.values() for r in v}
                                        if all(isinstance(v, list) for v in one.values())
                                        else []), one]
    if len(values) != 3:
        raise FormatError(f"The schema file '{p}' has {len(values)} JSON lines, not 3.",
                          hint="Line 1: type names, line 2: role names, line 3: {type: roles}.")
    types, roles, type_roles = values
    if not _names(types) or not _names(roles) or not isinstance(type_roles, dict) or \
            not all(isinstance(k, str) and _names(v) for k, v in type_roles.items()):
        raise FormatError(f"The schema file '{p}' does not hold [types], [roles], "
                          "{type: [roles]} (lists of strings).")
    return Schema(list(dict.fromkeys(types)), list(dict.fromkeys(roles)),
                  {k: list(dict.fromkeys(v)) for k, v in type_roles.items()})


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def schema_from_records(task: str, records: Iterable[Mapping[str, Any]]) -> Schema:
    """Every type (and role) the annotations use, in first-seen order."""
    types: dict[str, None] = {}
    roles: dict[str, None] = {}
    type_roles: dict[str, dict[str, None]] = {}
    for rec in records:
        for ann in rec.get("label") or []:
            if task == "NER":
                types[ann["entity_type"]] = None
            elif task in ("RE", "KG"):
                roles[ann["relation"]] = None
            else:
                t = ann["event_type"]
                types[t] = None
                for arg in ann.get("arguments", []):
                    roles[arg["role"]] = None
                    type_roles.setdefault(t, {})[arg["role"]] = None
                type_roles.setdefault(t, {})
    return Schema(list(types), list(roles), {k: list(v) for k, v in type_roles.items()})


# ---- answers


def _sorted_by_position(text: str, values: Iterable[Any], key: Any = None) -> list[Any]:
    """Values in the order they occur in the text (stable; not found sorts first,
    as ``str.find`` gives -1)."""
    return sorted(values, key=lambda v: text.find(key(v) if key else v))


def _dedup(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def chunk_output(task: str, text: str, chunk: Sequence[Any],
                 annotations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The answer a model is trained to give for one schema chunk: every chunk key
    in chunk order, values in text order (the ``output`` of a train record)."""
    name = get_task(task).name
    anns = list(annotations)
    out: dict[str, Any] = {}
    if name == "NER":
        for t in chunk:
            found = _dedup(a["entity"] for a in anns if a["entity_type"] == t)
            out[t] = _sorted_by_position(text, found)
    elif name == "EET":
        for t in chunk:
            out[t] = _sorted_by_position(text, [a.get("event_trigger", "") for a in anns
                                                if a["event_type"] == t])
    elif name == "RE":
        for r in chunk:
            pairs = _dedup((a["head"], a["tail"]) for a in anns if a["relation"] == r)
            pairs = sorted(pairs, key=lambda ht: (text.find(ht[0]), text.find(ht[1])))
            out[r] = [{"subject": h, "object": t} for h, t in pairs]
    elif name in ("EE", "EEA"):
        for item in chunk:
            out[item["event_type"]] = _events_output(text, item, anns)
    else:  # KG
        heads: dict[str, dict[str, list[str]]] = {}
        for a in anns:
            heads.setdefault(a["head"], {}).setdefault(a["relation"], [])
            if a["tail"] not in heads[a["head"]][a["relation"]]:
                heads[a["head"]][a["relation"]].append(a["tail"])
        for item in chunk:
            entities: dict[str, Any] = {}
            for head in _sorted_by_position(text, heads):
                attrs: dict[str, Any] = {}
                for attr in item["attributes"]:
                    tails = _sorted_by_position(text, heads[head].get(attr, []))
                    if tails:
                        attrs[attr] = tails[0] if len(tails) == 1 else tails
                entities[head] = attrs
            out[item["entity_type"]] = entities
    return out


def _events_output(text: str, item: Mapping[str, Any],
                   anns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """EE/EEA events of one schema item: a trigger (absent: NAN) and the asked
    roles, a role's several values as a list, no role found: {}."""
    with_trigger = bool(item.get("trigger", True))
    events = []
    for a in anns:
        if a["event_type"] != item["event_type"]:
            continue
        trigger = a.get("event_trigger", "")
        if trigger == "" and not a.get("arguments"):
            continue
        values: dict[str, list[str]] = {}
        for arg in a.get("arguments", []):
            if arg["argument"] != "" and arg["argument"] not in values.get(arg["role"], []):
                values.setdefault(arg["role"], []).append(arg["argument"])
        args: dict[str, Any] = {}
        for role in item["arguments"]:
            vals = _sorted_by_position(text, values.get(role, []))
            args[role] = NAN if not vals else vals[0] if len(vals) == 1 else vals
        if all(v == NAN for v in args.values()):
            args = {}
        if with_trigger:
            events.append({"trigger": trigger or NAN, "arguments": args})
        elif args:
            events.append({"arguments": args})
    if with_trigger:
        events = _sorted_by_position(text, events, key=lambda e: e["trigger"])
    return events


# ---- schema items per record


class _Sampler:
    """convert_func.py's negative sampling, with one seeded generator."""

    def __init__(self, options: ConvertOptions) -> None:
        self.o = options
        self.rng = random.Random(options.seed)

    def count(self, n: int) -> int:
        """How many of ``n`` items a Bernoulli(neg_ratio) draw keeps."""
        return sum(self.rng.random() < self.o.neg_ratio for _ in range(n))

    def sample(self, pool: list[Any], n_draws: int, at_least_one: bool) -> list[Any]:
        k = self.count(n_draws)
        if at_least_one:
            k = max(k, 1)
        return self.rng.sample(pool, min(k, len(pool)))

    def order(self, items: list[Any], key: Any = None) -> list[Any]:
        if self.o.random_sort:
            items = list(items)
            self.rng.shuffle(items)
            return items
        return sorted(items, key=key)

    # label tasks: NER, RE, EET

    def names(self, schema: list[str], positives: list[str]) -> list[str]:
        if self.o.hard_negatives is not None:
            return self._cluster(schema, positives)
        if self.o.neg_ratio == 0:
            return self.order(positives)
        negatives = [t for t in schema if t not in positives]
        chosen = self.sample(negatives, len(schema), at_least_one=not positives)
        return self.order(chosen + positives)

    def _cluster(self, schema: list[str], positives: list[str]) -> list[str]:
        hard = self.o.hard_negatives or {}
        if len(schema) == 1:
            return list(schema)
        if not positives:
            k = max(sum(self.rng.random() < self.o.neg_ratio / 2 for _ in schema), 1)
            return self.order(self.rng.sample(schema, min(k, len(schema))))
        cluster = list(positives)
        for p in positives:
            cluster += [h for h in hard.get(p, []) if h not in cluster]
        others = [t for t in schema if t not in cluster]
        cluster += self.rng.sample(others, min(len(others), self.o.chunk_size))
        return self.order(cluster)

    # EE

    def events(self, schema: Schema, anns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        pos_types = _dedup(a["event_type"] for a in anns)
        pos_roles: dict[str, list[str]] = {t: [] for t in pos_types}
        for a in anns:
            for arg in a.get("arguments", []):
                if arg["role"] not in pos_roles[a["event_type"]]:
                    pos_roles[a["event_type"]].append(arg["role"])
        items: list[tuple[str, list[str]]] = []
        if self.o.neg_ratio == 0:
            items = [(t, list(schema.type_roles.get(t, pos_roles[t]))) for t in pos_types]
        else:
            all_types = schema.event_types()
            negatives = [t for t in all_types if t not in pos_types]
            neg_types = self.sample(negatives, len(schema.type_roles), not pos_types)
            for t in pos_types:
                roles = schema.type_roles.get(t, [])
                others = [r for r in roles if r not in pos_roles[t]]
                items.append((t, self.sample(others, len(roles), not pos_roles[t])
                              + pos_roles[t]))
            for t in neg_types:
                roles = schema.type_roles.get(t, [])
                items.append((t, self.sample(list(roles), len(roles), True)))
        items = [(t, self.order(roles)) for t, roles in items]
        items = self.order(items, key=lambda x: x[0])
        return [{"event_type": t, "trigger": True, "arguments": roles} for t, roles in items]

    # EEA: the record's own event types, with their triggers

    def argument_events(self, schema: Schema,
                        anns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        triggers: dict[str, list[str]] = {}
        for a in anns:
            triggers.setdefault(a["event_type"], []).append(a.get("event_trigger", ""))
        items = []
        for t, trigs in triggers.items():
            roles = list(schema.type_roles.get(t, []))
            if self.o.neg_ratio > 0:
                roles = self.sample(roles, len(roles), True)
            kept = self.sample(trigs, len(trigs), True)
            items.append((t, kept, self.order(roles)))
        items = self.order(items, key=lambda x: x[0])
        return [{"event_type": t, "trigger": trigs, "arguments": roles}
                for t, trigs, roles in items]

    # KG: one entity type, its attributes sampled

    def entity_types(self, schema: Schema, anns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if not schema.type_roles:
            raise SchemaError("KG conversion needs an entity type: give a schema file whose "
                              "third line is {entity type: [attributes]}.")
        etype = next(iter(schema.type_roles))
        attrs = schema.roles or schema.type_roles[etype]
        if self.o.neg_ratio == 0:
            chosen = _dedup(a["relation"] for a in anns)
        else:
            chosen = self.sample(list(attrs), len(attrs), True)
        return [{"entity_type": etype, "attributes": self.order(chosen)}]


def asked_items(task: str, schema: Schema,
               anns: Sequence[Mapping[str, Any]] | None) -> list[Any] | None:
    """Every schema item a test record is asked about (None: nothing to ask)."""
    if task in LABEL_TASKS:
        return list(schema.names(task)) or None
    if task == "EE":
        return [{"event_type": t, "trigger": True, "arguments": schema.type_roles.get(t, [])}
                for t in schema.event_types()] or None
    if task == "EEA":
        if not anns:
            return None
        return [{"event_type": t, "arguments": schema.type_roles.get(t, [])}
                for t in _dedup(a["event_type"] for a in anns)]
    return [{"entity_type": t, "attributes": roles} for t, roles in schema.type_roles.items()] \
        or None


def _label(task: str, anns: list[Mapping[str, Any]]) -> str:
    """A test record's label: the annotations (NER/RE without duplicates, as DeepKE)."""
    fields = {"NER": ("entity", "entity_type"), "RE": ("head", "relation", "tail")}.get(task)
    if fields is not None:
        seen: set[tuple[str, ...]] = set()
        kept = []
        for a in anns:
            key = tuple(a[f] for f in fields)
            if key not in seen:
                seen.add(key)
                kept.append(a)
        anns = kept
    return json.dumps(anns, ensure_ascii=False)


def stable_id(text: str) -> str:
    """A test record's id: sha256 of its text, as DeepKE's converter makes it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def convert_records(records: Iterable[Mapping[str, Any]], schema: Schema,
                    options: ConvertOptions) -> Iterator[dict[str, Any] | tuple[str, str]]:
    """Instruction records for each input record (normalised, ``label`` = its
    annotations); a record that yields none gives ``("skipped", reason)``."""
    task, o = options.task, options
    sampler = _Sampler(o)
    source = o.source or "None"
    for rec in records:
        text = rec["text"]
        anns = rec.get("label")
        rid = rec.get("id")
        if o.split == "test":
            items = asked_items(task, schema, anns)
            if items is None:
                yield ("skipped", f"record {rid}: no schema item to ask"
                       + (" (EEA needs the record's events)" if task == "EEA" else ""))
                continue
            for chunk in split_schema(items, o.chunk_size):
                out: dict[str, Any] = {"id": stable_id(text), "task": task,
                                       "source": rec.get("source", source),
                                       "instruction": build_instruction(task, chunk, text, o.lang)}
                if anns is not None:
                    out["label"] = _label(task, list(anns))
                yield out
            continue
        if anns is None:
            yield ("skipped", f"record {rid}: no '{ANNOTATION_FIELDS[task]}' annotations "
                   "(train files need them)")
            continue
        if task in LABEL_TASKS:
            key = {"NER": "entity_type", "RE": "relation", "EET": "event_type"}[task]
            items = sampler.names(schema.names(task), _dedup(a[key] for a in anns))
        elif task == "EE":
            items = sampler.events(schema, anns)
        elif task == "EEA":
            items = sampler.argument_events(schema, anns) if anns else []
        else:
            items = sampler.entity_types(schema, anns)
        if not items:
            yield ("skipped", f"record {rid}: nothing to ask (no positive and no negative "
                   "schema item)")
            continue
        for chunk in split_schema(items, o.chunk_size):
            yield {"task": task, "source": rec.get("source", source),
                   "instruction": build_instruction(task, chunk, text, o.lang),
                   "output": json.dumps(chunk_output(task, text, chunk, anns),
                                        ensure_ascii=False)}


def convert_file(src: str | os.PathLike[str], out: str | os.PathLike[str], options: ConvertOptions,
                 *, schema_path: str | os.PathLike[str] | None = None,
                 force: bool = False) -> dict[str, Any]:
    """Convert an annotation file; bad records go to ``OUT.errors.jsonl`` with their
    reason. Returns a report (counts, paths, skipped reasons)."""
    from lamina.ie.io import errors_path

    src_p = require_file(src, "annotation file")
    if schema_path is None and options.task == "KG":
        raise InputError("KG conversion needs a schema file: the annotations do not say the "
                         "entity type.", hint="Give --schema FILE whose third line is "
                         '{"人物": ["出生日期", ...]} (DeepKE\'s data/KG/schema.json).')
    items, bad = [], []
    for entry in read_records(src_p, task=options.task, need="text", kinds=("text",),
                              what="annotation file"):
        (bad if isinstance(entry, BadLine) else items).append(entry)
    if not items and not bad:
        raise InputError(f"The annotation file '{src_p}' holds no records.")
    schema = load_schema_file(schema_path) if schema_path is not None else \
        schema_from_records(options.task, items)
    if options.source is None:  # DeepKE: the source is the input's folder name
        options = dataclasses.replace(options, source=src_p.resolve().parent.name)
    written, skipped = 0, []
    out_p = Path(out)
    with atomic_output(out_p, force=force) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for rec in convert_records(items, schema, options):
            if isinstance(rec, tuple):
                skipped.append(rec[1])
                continue
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            written += 1
    err_p = errors_path(out_p)
    if bad:
        with atomic_output(err_p, force=True) as tmp, tmp.open("w", encoding="utf-8") as fh:
            for b in bad:
                fh.write(json.dumps(b.as_record(), ensure_ascii=False) + "\n")
    else:
        err_p.unlink(missing_ok=True)
    return {"task": options.task, "split": options.split, "records": len(items),
            "written": written, "skipped": skipped, "bad": len(bad),
            "errors_file": str(err_p) if bad else None, "output": str(out_p),
            "schema": {"types": schema.types, "roles": schema.roles,
                       "type_roles": schema.type_roles},
            "split_num": options.chunk_size, "source": options.source}
