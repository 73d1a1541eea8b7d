"""Seed 002's in-context-learning tasks for general chat models (``--format icl``).

Seed 002's ``incontext_learning.py`` asks a chat model (no IE fine-tune) to
extract with an instruction built from the task, an optional domain and label
set, a few solved examples, and the input. Its task set: ``ner`` (entities
of the labels), ``re`` (the relation between a *given* head and tail entity),
``ee`` (events and their arguments), ``rte`` (relation triples) and ``da``
(data augmentation: new samples for a relation, whose entity types are the
labels). lamina words the instructions itself, in Chinese or English, and
asks for one JSON answer whose shape the grammar enforces (labels, when
given, are the only types the grammar allows):

* ner: ``[{"entity": text, "type": label}, ...]``
* re: ``"relation"`` (one JSON string)
* ee: ``[{"event_type": label, "arguments": [{"role": r, "argument": text}]}]``
* rte: ``[[subject, predicate, object], ...]``
* da: ``[{"context", "head_entity", "head_type", "tail_entity", "tail_type"}]``

Results use lamina's IEPile result shapes, so ``lamina eval`` scores them
(ner -> NER ``{type: [entities]}``, re and rte -> RE ``{relation: [{"subject",
"object"}]}``, ee -> EE ``{event_type: [{"arguments": {role: value}}]}``; da's
result is ``{"samples": [...]}``). Example files are the seed's own
``data/ICL_Examples`` shapes: ner ``{"samples": [{"text", "data": [{"E",
"W"}]}]}``, re/da ``[{"text", "head_type", "head_entity", "tail_type",
"tail_entity", "relation"}]``, ee ``[{"text", "event_list"}]``, rte ``[{"text",
"labels": [[s, p, o]]}]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lamina.errors import FormatError, SchemaError
from lamina.files import require_file

ICL_TASKS = ("ner", "re", "ee", "rte", "da")
#: The IEPile task whose result shape (and ``lamina eval`` rules) each ICL task uses.
RESULT_TASK = {"ner": "NER", "re": "RE", "ee": "EE", "rte": "RE"}
#: Record fields an ICL record may carry (the seed's example layout); they win
#: over the command-line values.
RECORD_FIELDS = ("domain", "labels", "head_entity", "head_type", "tail_entity", "tail_type")


def get_icl_task(name: str) -> str:
    task = str(name).lower()
    if task not in ICL_TASKS:
        raise SchemaError(f"Unknown in-context-learning task '{name}'.",
                          hint=f"With --format icl, --task is one of: {', '.join(ICL_TASKS)}.")
    return task


@dataclass(frozen=True)
class IclParams:
    """What one ICL prompt is about besides its text."""

    domain: str | None = None
    labels: tuple[str, ...] = ()
    head_entity: str | None = None
    head_type: str | None = None
    tail_entity: str | None = None
    tail_type: str | None = None

    def merged(self, record: Mapping[str, Any]) -> IclParams:
        """These values with a record's own fields on top."""
        values: dict[str, Any] = dict(self.__dict__)
        for key in RECORD_FIELDS:
            if record.get(key) is not None:
                values[key] = record[key]
        labels = values["labels"]
        if isinstance(labels, str):
            labels = [s.strip() for s in labels.replace("，", ",").split(",") if s.strip()]
        if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
            raise SchemaError("'labels' must be a list of names (or one comma-separated string).")
        values["labels"] = tuple(dict.fromkeys(labels))
        for key in RECORD_FIELDS[2:]:
            if values[key] is not None and not isinstance(values[key], str):
                raise SchemaError(f"'{key}' must be text.")
        return IclParams(**values)

    def check(self, task: str) -> IclParams:
        if task == "re":
            missing = [k for k in RECORD_FIELDS[2:] if not getattr(self, k)]
            if missing:
                raise SchemaError(f"The re task names the entity pair: {', '.join(missing)} "
                                  "missing.", hint="Give --head, --head-type, --tail and "
                                  "--tail-type, or those fields in each record.")
        if task == "da" and not self.labels:
            raise SchemaError("The da task needs the entity types as --labels.")
        return self


def icl_params(**values: Any) -> IclParams:
    """IclParams from loose values (labels as a list or "a,b" text; None = unset)."""
    return IclParams().merged(values)


@dataclass(frozen=True)
class IclExample:
    """One solved example in the seed's ICL layout, its answer in lamina's format."""

    text: str
    answer: Any
    params: IclParams = field(default_factory=IclParams)


# ---- prompt text (lamina's own wording)

_ROLE = {
    "zh": {"ner": "命名实体识别", "re": "关系抽取", "ee": "事件抽取", "rte": "三元组抽取",
           "da": "关系抽取数据扩充"},
    "en": {"ner": "named entity recognition", "re": "relation extraction",
           "ee": "event extraction", "rte": "relation triple extraction",
           "da": "relation extraction data augmentation"},
}
_GOAL = {
    "zh": {"ner": "找出输入文本中的实体并给出类型",
           "re": "判断上下文中给定的头实体与尾实体之间是什么关系",
           "ee": "找出输入文本中的事件、事件类型和各论元的角色",
           "rte": "找出输入文本中的所有（主语，谓语，宾语）三元组",
           "da": "为给定的关系写出新的样本：一段上下文、其中的头实体和尾实体及它们的类型"},
    "en": {"ner": "find the entities in the input text and give their types",
           "re": "tell the relation between the given head and tail entity in the context",
           "ee": "find the events in the input text, their types and the roles of their "
                 "arguments",
           "rte": "find every (subject, predicate, object) triple in the input text",
           "da": "write new samples for the given relation: a context, the head and tail "
                 "entity in it, and their types"},
}
_FORMAT = {
    "zh": {"ner": '只回答一个JSON列表：[{"entity": 实体, "type": 类型}, ...]，没有实体时回答[]。',
           "re": "只回答关系类型，写成一个JSON字符串。",
           "ee": '只回答一个JSON列表：[{"event_type": 事件类型, "arguments": [{"role": 角色, '
                 '"argument": 论元}, ...]}, ...]，没有事件时回答[]。',
           "rte": "只回答一个JSON列表：[[主语, 谓语, 宾语], ...]，没有三元组时回答[]。",
           "da": '只回答一个JSON列表：[{"context": 上下文, "head_entity": 头实体, "head_type": '
                 '头实体类型, "tail_entity": 尾实体, "tail_type": 尾实体类型}, ...]。'},
    "en": {"ner": 'Answer with one JSON list only: [{"entity": entity, "type": type}, ...], '
                  "or [] when there is none.",
           "re": "Answer with the relation type only, as one JSON string.",
           "ee": 'Answer with one JSON list only: [{"event_type": type, "arguments": '
                 '[{"role": role, "argument": argument}, ...]}, ...], or [] when there is none.',
           "rte": "Answer with one JSON list only: [[subject, predicate, object], ...], "
                  "or [] when there is none.",
           "da": 'Answer with one JSON list only: [{"context": context, "head_entity": head, '
                 '"head_type": type, "tail_entity": tail, "tail_type": type}, ...].'},
}
_WORDS = {
    "zh": {"you": "你是一个{domain}{role}系统，任务是{goal}。", "domain": "{0}领域的",
           "labels": {"ner": "实体类型只能是：{0}。", "re": "关系类型只能是：{0}。",
                      "ee": "事件类型只能是：{0}。", "rte": "谓语只能是：{0}。",
                      "da": "实体类型只能是：{0}。"},
           "sep": "，", "examples": "示例：", "input": "输入：", "output": "输出：",
           "context": "上下文：", "head": "头实体（{0}）：{1}", "tail": "尾实体（{0}）：{1}",
           "relation": "关系：", "for": "关系：{0}", "samples": "样本："},
    "en": {"you": "You are a{domain} {role} system. Your task: {goal}.", "domain": " {0}",
           "labels": {"ner": "The entity types are: {0}.", "re": "The relation types are: {0}.",
                      "ee": "The event types are: {0}.", "rte": "The predicates are: {0}.",
                      "da": "The entity types are: {0}."},
           "sep": ", ", "examples": "Examples:", "input": "Input: ", "output": "Output: ",
           "context": "Context: ", "head": "Head entity ({0}): {1}",
           "tail": "Tail entity ({0}): {1}", "relation": "Relation: ", "for": "Relation: {0}",
           "samples": "Samples: "},
}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def instruction(task: str, lang: str, params: IclParams) -> str:
    """The opening lines: role (with the domain), goal, label set, answer format."""
    w = _WORDS[lang]
    domain = w["domain"].format(params.domain) if params.domain else ""
    lines = [w["you"].format(domain=domain, role=_ROLE[lang][task], goal=_GOAL[lang][task])]
    if params.labels:
        lines.append(w["labels"][task].format(w["sep"].join(params.labels)))
    lines.append(_FORMAT[lang][task])
    return "\n".join(lines)


def _query(task: str, lang: str, text: str, params: IclParams) -> str:
    """The question part: the input (re: with the entity pair; da: the relation)."""
    w = _WORDS[lang]
    if task == "re":
        return "\n".join([w["context"] + text,
                          w["head"].format(params.head_type, params.head_entity),
                          w["tail"].format(params.tail_type, params.tail_entity),
                          w["relation"]])
    if task == "da":
        return w["for"].format(text) + "\n" + w["samples"]
    return w["input"] + text + "\n" + w["output"]


def build_prompt(task: str, lang: str, text: str, params: IclParams,
                 examples: Sequence[IclExample] = ()) -> str:
    """The whole user turn: instruction, the solved examples, then the question."""
    w = _WORDS[lang]
    parts = [instruction(task, lang, params)]
    if examples:
        shown = [w["examples"]]
        for ex in examples:
            shown.append(_query(task, lang, ex.text, ex.params) + _dumps(ex.answer))
        parts.append("\n\n".join(shown))
    parts.append(_query(task, lang, text, params))
    return "\n\n".join(parts)


# ---- example files (the seed's data/ICL_Examples shapes)


def load_examples(path: str | os.PathLike[str], task: str) -> list[IclExample]:
    """Solved examples for ``task`` from a file in the seed's layout; any bad
    record is an error naming it."""
    task = get_icl_task(task)
    p = require_file(path, "examples file")
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"The examples file '{p}' is not JSON ({exc}).") from exc
    if task == "ner" and isinstance(data, Mapping):
        data = data.get("samples")
    if not isinstance(data, list) or not data:
        raise FormatError(f"The examples file '{p}' does not hold a list of {task} examples.",
                          hint='ner: {"samples": [{"text", "data": [{"E", "W"}]}]}; re/da: '
                               '[{"text", "head_entity", ...}]; ee: [{"text", "event_list"}]; '
                               'rte: [{"text", "labels"}].')
    out, bad = [], []
    for n, item in enumerate(data, 1):
        try:
            out.append(_example(task, item))
        except (KeyError, TypeError, ValueError) as exc:
            bad.append(f"example {n}: {exc}")
    if bad:
        raise FormatError(f"The examples file '{p}' has {len(bad)} unusable example(s): "
                          + "; ".join(bad[:5]) + ".")
    return out


def _need(item: Any, key: str, kind: type = str) -> Any:
    if not isinstance(item, Mapping):
        raise TypeError("is not a JSON object")
    if key not in item:
        raise KeyError(f"no '{key}' field")
    if not isinstance(item[key], kind):
        raise TypeError(f"'{key}' is not a {kind.__name__}")
    return item[key]


def _example(task: str, item: Any) -> IclExample:
    text = _need(item, "text")
    if task == "ner":
        answer = [{"entity": _need(e, "W"), "type": _need(e, "E")} for e in _need(item, "data", list)]
        return IclExample(text, answer)
    if task in ("re", "da"):
        pair = IclParams(head_entity=_need(item, "head_entity"), head_type=_need(item, "head_type"),
                         tail_entity=_need(item, "tail_entity"), tail_type=_need(item, "tail_type"))
        relation = _need(item, "relation")
        if task == "re":
            return IclExample(text, relation, pair)
        sample = {"context": text, "head_entity": pair.head_entity, "head_type": pair.head_type,
                  "tail_entity": pair.tail_entity, "tail_type": pair.tail_type}
        return IclExample(relation, [sample])
    if task == "ee":
        events = []
        for ev in _need(item, "event_list", list):
            args = [{"role": _need(a, "role"), "argument": _need(a, "argument")}
                    for a in _need(ev, "arguments", list)]
            events.append({"event_type": _need(ev, "event_type"), "arguments": args})
        return IclExample(text, events)
    triples = _need(item, "labels", list)  # rte
    if not all(isinstance(t, list) and len(t) == 3 and all(isinstance(x, str) for x in t)
               for t in triples):
        raise ValueError("'labels' must be [subject, predicate, object] lists of text")
    return IclExample(text, [list(t) for t in triples])


def pick(examples: Sequence[IclExample], text: str, shots: int) -> list[IclExample]:
    """The first ``shots`` examples (the seed shows them in file order), never one
    whose text is the question's own."""
    return [e for e in examples if e.text != text][:max(0, shots)]


# ---- answers


def read_answer(task: str, answer: str, params: IclParams) -> tuple[dict[str, Any], str | None]:
    """(result in lamina's shapes, error or None) of one ICL answer; without the
    grammar, code fences and chatter around the JSON are tolerated."""
    data, error = _load(answer)
    if error is not None:
        return {}, error
    if task == "re":
        if not isinstance(data, str) or not data.strip():
            return {}, "the answer is not a relation name"
        return {data: [{"subject": params.head_entity, "object": params.tail_entity}]}, None
    if not isinstance(data, list):
        return {}, "the answer is not a JSON list"
    if task == "ner":
        out: dict[str, list[Any]] = {t: [] for t in params.labels}
        for e in data:
            if isinstance(e, Mapping) and isinstance(e.get("entity"), str) \
                    and isinstance(e.get("type"), str):
                out.setdefault(e["type"], []).append(e["entity"])
        return out, None
    if task == "rte":
        out = {t: [] for t in params.labels}
        for t in data:
            if isinstance(t, list) and len(t) == 3 and all(isinstance(x, str) for x in t):
                out.setdefault(t[1], []).append({"subject": t[0], "object": t[2]})
        return out, None
    if task == "ee":
        out = {t: [] for t in params.labels}
        for ev in data:
            if not isinstance(ev, Mapping) or not isinstance(ev.get("event_type"), str):
                continue
            args: dict[str, Any] = {}
            for a in ev.get("arguments", []) if isinstance(ev.get("arguments"), list) else []:
                if isinstance(a, Mapping) and isinstance(a.get("role"), str) \
                        and isinstance(a.get("argument"), str):
                    prev = args.get(a["role"])
                    args[a["role"]] = a["argument"] if prev is None else \
                        [*(prev if isinstance(prev, list) else [prev]), a["argument"]]
            out.setdefault(ev["event_type"], []).append({"arguments": args})
        return out, None
    samples = [s for s in data if isinstance(s, Mapping)]  # da
    return {"samples": samples}, None


def _load(answer: str) -> tuple[Any, str | None]:
    text = answer.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        first = exc
    for open_, close in (("[", "]"), ('"', '"')):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            try:
                return json.loads(text[start:end + 1]), None
            except json.JSONDecodeError:
                continue
    return None, f"the answer is not JSON ({first.msg})"
