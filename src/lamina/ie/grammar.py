"""Schema -> GBNF grammar: llama.cpp can then only write the exact answer shape.

The grammar fixes the keys (schema order, every key once, nothing else), the
separators (json.dumps style, as in the training data) and bounds every list
and string, so even a random model finishes in a known number of characters
and every finished answer parses. Strings are JSON strings without raw
control characters (escapes allowed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lamina.errors import SchemaError
from lamina.ie.instructions import PAIR_JOIN, PAIR_SEP
from lamina.ie.schema_split import schema_keys
from lamina.ie.tasks import TaskSpec, get_task


@dataclass(frozen=True)
class GrammarLimits:
    """Upper bounds that keep a constrained answer finite.

    ``max_items``: entries per list (entities per type, events per type, values
    per argument, entities per KG type). ``max_chars``: characters per string.
    """

    max_items: int = 16
    max_chars: int = 48

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_chars < 1:
            raise SchemaError("Grammar limits must be at least 1 (max_items, max_chars).")


def gbnf_literal(text: str) -> str:
    """A GBNF string literal matching ``text`` exactly."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _json_key(key: str) -> str:
    """GBNF literal for ``"key": `` as json.dumps writes it."""
    return gbnf_literal(json.dumps(key, ensure_ascii=False) + ": ")


def _list_of(item: str, limits: GrammarLimits) -> str:
    more = f'(", " {item}){{0,{limits.max_items - 1}}}' if limits.max_items > 1 else ""
    return f'"[]" | "[" {item} {more} "]"'


class _Rules:
    """Accumulates named rules; rule names are generated, bodies kept in order."""

    def __init__(self, limits: GrammarLimits) -> None:
        self.limits = limits
        self.lines: list[str] = []

    def add(self, name: str, body: str) -> str:
        self.lines.append(f"{name} ::= {body}")
        return name

    def text(self) -> str:
        n = self.limits.max_chars
        common = [
            f'str ::= "\\"" char{{1,{n}}} "\\""',
            'char ::= [^"\\\\\\x00-\\x1f] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
            f"strs ::= {_list_of('str', self.limits)}",
            f'value ::= str | "[" str (", " str){{0,{self.limits.max_items - 1}}} "]"',
        ]
        return "\n".join(self.lines + common) + "\n"


def _object(keys: Sequence[str], values: Sequence[str]) -> str:
    """All keys, in order, each followed by its value rule."""
    if not keys:
        return '"{}"'
    parts = []
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        lit = _json_key(key) if i == 0 else gbnf_literal(", ") + " " + _json_key(key)
        parts.append(f"{lit} {value}")
    return '"{" ' + " ".join(parts) + ' "}"'


def build_grammar(task: str | TaskSpec, schema: Sequence[Any] | Mapping[str, str],
                  limits: GrammarLimits | None = None) -> str:
    """GBNF text for the answer to one schema chunk of ``task``."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    lim = limits or GrammarLimits()
    rules = _Rules(lim)
    keys = schema_keys(spec, schema)
    items = list(schema)
    values: list[str] = []
    so = rules.add("so", '"{\\"subject\\": " str ", \\"object\\": " str "}"') \
        if spec.name == "RE" else ""
    for i, item in enumerate(items):
        if spec.name in ("NER", "EET"):
            values.append("strs")
        elif spec.name == "RE":
            values.append(rules.add(f"rel{i}", _list_of(so, lim)))
        elif spec.name in ("EE", "EEA"):
            roles = item["arguments"]
            args = rules.add(f"args{i}", _object(roles, ["value"] * len(roles)))
            if spec.name == "EE":
                args_or_empty = rules.add(f"eargs{i}", f'"{{}}" | {args}') if roles else args
                if item.get("trigger", True):
                    body = f'"{{\\"trigger\\": " str ", \\"arguments\\": " {args_or_empty} "}}"'
                else:
                    body = f'"{{\\"arguments\\": " {args_or_empty} "}}"'
                event = rules.add(f"event{i}", body)
            else:
                event = args
            values.append(rules.add(f"events{i}", _list_of(event, lim)))
        elif spec.name == "KG":
            attrs = item["attributes"]
            attr_obj = _optional_subset(rules, f"kg{i}", attrs)
            entity = rules.add(f"entity{i}", f'str ": " {attr_obj}')
            more = f'(", " {entity}){{0,{lim.max_items - 1}}}' if lim.max_items > 1 else ""
            values.append(rules.add(f"entities{i}", f'"{{}}" | "{{" {entity} {more} "}}"'))
        else:  # pragma: no cover - every task is listed above
            raise SchemaError(f"No grammar for task {spec.name}.")
    root = _object(keys, values)
    # One optional leading space: instruction-tuned SentencePiece models learn
    # "▁{" as the answer's first token (the target was tokenized on its own,
    # with the dummy prefix); forbidding it would force them off their path.
    rules.lines.insert(0, f'root ::= " "? {root}')
    return rules.text()


def _optional_subset(rules: _Rules, prefix: str, attrs: Sequence[str]) -> str:
    """An object holding any subset of ``attrs`` (at least none), in order.

    ``tail_k`` = a non-empty in-order subset of attrs[k:], starting with its
    first member's key; linear in the number of attributes.
    """
    if not attrs:
        return rules.add(f"{prefix}obj", '"{}"')
    n = len(attrs)
    for k in range(n - 1, -1, -1):
        kv = f"{_json_key(attrs[k])} value"
        if k == n - 1:
            rules.add(f"{prefix}t{k}", kv)
        else:
            rules.add(f"{prefix}t{k}", f'{kv} (", " {prefix}t{k + 1})? | {prefix}t{k + 1}')
    return rules.add(f"{prefix}obj", f'"{{" {prefix}t0? "}}"')


def build_pair_grammar(categories: Sequence[str], limits: GrammarLimits | None = None) -> str:
    """GBNF for the seed-000 answer: ``类别_实体`` pairs joined by ``&`` (or nothing)."""
    lim = limits or GrammarLimits()
    cats = " | ".join(gbnf_literal(c) for c in categories)
    sep, join = gbnf_literal(PAIR_SEP), gbnf_literal(PAIR_JOIN)
    more = f"({sep} pair){{0,{lim.max_items - 1}}}" if lim.max_items > 1 else ""
    return (
        f'root ::= " "? (pair {more})?\n'
        f"pair ::= ({cats}) {join} ent\n"
        f"ent ::= [^&\\x00-\\x1f]{{1,{lim.max_chars}}}\n"
    )


def build_icl_grammar(task: str, labels: Sequence[str] = (),
                      limits: GrammarLimits | None = None) -> str:
    """GBNF for the answers of ``--format icl`` (see ``lamina.ie.icl``); ``labels``,
    when given, are the only types (ner, ee), relations (re), predicates (rte) or
    entity types (da) the answer may name."""
    lim = limits or GrammarLimits()
    rules = _Rules(lim)
    kind = "(" + " | ".join(gbnf_literal(json.dumps(x, ensure_ascii=False)) for x in labels) \
        + ")" if labels else "str"
    rules.add("kind", kind)
    key = _json_key
    if task == "ner":
        item = rules.add("ent", f'"{{" {key("entity")} str ", " {key("type")} kind "}}"')
    elif task == "re":
        rules.lines.insert(0, 'root ::= " "? kind')
        return rules.text()
    elif task == "ee":
        arg = rules.add("arg", f'"{{" {key("role")} str ", " {key("argument")} str "}}"')
        args = rules.add("args", _list_of(arg, lim))
        item = rules.add("event", f'"{{" {key("event_type")} kind ", " {key("arguments")} '
                                  f'{args} "}}"')
    elif task == "rte":
        item = rules.add("triple", '"[" str ", " kind ", " str "]"')
    elif task == "da":
        fields = [("context", "str"), ("head_entity", "str"), ("head_type", "kind"),
                  ("tail_entity", "str"), ("tail_type", "kind")]
        item = rules.add("sample", _object([f for f, _ in fields], [v for _, v in fields]))
    else:
        raise SchemaError(f"No in-context-learning grammar for task '{task}'.")
    rules.lines.insert(0, f'root ::= " "? ({_list_of(item, lim)})')
    return rules.text()
