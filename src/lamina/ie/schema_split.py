"""Schemas: validate them, split long ones into chunks, merge the answers back.

The models were trained on instructions holding at most ``split_num`` schema
items, so a long schema is asked chunk by chunk (DeepKE's test-time rule: full
chunks of ``split_num``; a short tail of fewer than ``split_num // 2`` items is
folded into the last chunk). The answers are merged into one object whose keys
follow the user's schema order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lamina.errors import SchemaError
from lamina.ie.tasks import TaskSpec, get_task

Schema = list[Any]


def load_schema(value: str | Sequence[Any] | Mapping[str, str]) -> Any:
    """Schema from a JSON string, a path to a JSON file, or a Python object."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text and text[0] not in "[{\"" and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"The schema is not valid JSON ({exc.msg} at character {exc.pos}).",
            hint='Give a JSON list, e.g. --schema \'["人物","地理位置"]\'.',
        ) from exc


def normalize_schema(task: str | TaskSpec, schema: Any) -> Schema | dict[str, str]:
    """Check a schema against its task and return it in the trained layout.

    Label tasks (NER, RE, EET) take a list of names (or a {name: description}
    dict, OneKE's described schema, which is never split). Object tasks take
    dicts: EE {"event_type", "trigger", "arguments"}, EEA {"event_type",
    "arguments"}, KG {"entity_type", "attributes"}; keys are re-emitted in that
    order because the instruction text must match the training data exactly.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    schema = load_schema(schema)
    example = _example(spec)
    if isinstance(schema, Mapping) and spec.item_kind == "label":
        if not schema or not all(isinstance(k, str) and k and isinstance(v, str)
                                 for k, v in schema.items()):
            raise SchemaError("A described schema must map each non-empty type name to a "
                              "description string.", hint=f"Example: {example}")
        return dict(schema)
    if not isinstance(schema, list):
        raise SchemaError(f"The {spec.name} schema must be a JSON list, got "
                          f"{type(schema).__name__}.", hint=f"Example: {example}")
    if not schema:
        raise SchemaError("The schema is empty: nothing to extract.", hint=f"Example: {example}")
    out: Schema = []
    for i, item in enumerate(schema):
        if spec.item_kind == "label":
            if not isinstance(item, str) or not item.strip():
                raise SchemaError(f"Schema item {i + 1} ({item!r}) is not a non-empty string.",
                                  hint=f"Example: {example}")
            out.append(item)
        else:
            out.append(_object_item(spec, item, i, example))
    keys = schema_keys(spec, out)
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise SchemaError(f"The schema names {', '.join(dupes)} more than once.",
                          hint="Each type may appear only once.")
    return out


def _object_item(spec: TaskSpec, item: Any, i: int, example: str) -> dict[str, Any]:
    assert spec.key_field and spec.list_field
    if not isinstance(item, Mapping) or not isinstance(item.get(spec.key_field), str) \
            or not item[spec.key_field]:
        raise SchemaError(f"Schema item {i + 1} must be an object with a non-empty "
                          f"\"{spec.key_field}\".", hint=f"Example: {example}")
    field = spec.list_field
    if field not in item and spec.list_alias is not None and spec.list_alias in item:
        field = spec.list_alias
    roles = item.get(field, [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise SchemaError(f"\"{field}\" of schema item {i + 1} must be a list of "
                          "non-empty strings.", hint=f"Example: {example}")
    if len(set(roles)) != len(roles):
        raise SchemaError(f"\"{field}\" of schema item {i + 1} repeats a name.")
    norm: dict[str, Any] = {spec.key_field: item[spec.key_field]}
    for key, default in spec.defaults:
        value = item.get(key, default)
        if not isinstance(value, bool):
            raise SchemaError(f"\"{key}\" of schema item {i + 1} must be true or false.")
        norm[key] = value
    norm[spec.list_field] = list(roles)
    return norm


def _example(spec: TaskSpec) -> str:
    return {
        "NER": '["人物", "地理位置", "组织机构"]',
        "RE": '["作者", "国籍"]',
        "EET": '["人生-订婚", "组织关系-裁员"]',
        "EE": '[{"event_type": "人生-订婚", "trigger": true, "arguments": ["订婚主体", "时间"]}]',
        "EEA": '[{"event_type": "组织关系-辞/离职", "arguments": ["离职者", "时间"]}]',
        "KG": '[{"entity_type": "人物", "attributes": ["出生日期", "国籍"]}]',
    }[spec.name]


def example_schema(task: str | TaskSpec) -> Any:
    """A small valid schema for ``task`` (what error hints and the web page show)."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    return json.loads(_example(spec))


def schema_keys(task: str | TaskSpec, schema: Schema | Mapping[str, str]) -> list[str]:
    """The output keys a schema asks for, in order."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if isinstance(schema, Mapping):
        return list(schema)
    if spec.item_kind == "label":
        return list(schema)
    return [item[spec.key_field] for item in schema]


def split_schema(schema: Schema | Mapping[str, str], split_num: int) -> list[Any]:
    """Chunks of at most ``split_num`` items (-1: no split), DeepKE's test rule."""
    if isinstance(schema, Mapping):
        return [dict(schema)]
    if split_num == 0 or split_num < -1:
        raise SchemaError(f"split_num must be a positive number or -1 (no split), got {split_num}.")
    items = list(schema)
    if split_num == -1 or len(items) < split_num:
        return [items]
    full = (len(items) // split_num) * split_num
    chunks = [items[i:i + split_num] for i in range(0, full, split_num)]
    tail = items[full:]
    if tail:
        if len(tail) >= max(1, split_num // 2):
            chunks.append(tail)
        else:
            chunks[-1].extend(tail)
    return chunks


def empty_value(task: str | TaskSpec) -> Any:
    """What a schema key holds when nothing was found ([] or {} for KG)."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    return {} if spec.name == "KG" else []


def empty_result(task: str | TaskSpec, schema: Schema | Mapping[str, str]) -> dict[str, Any]:
    return {key: empty_value(task) for key in schema_keys(task, schema)}


def merge_results(task: str | TaskSpec, schema: Schema | Mapping[str, str],
                  parts: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """One result with every schema key in schema order; a missing part
    (a failed chunk) leaves its keys empty."""
    merged = empty_result(task, schema)
    for part in parts:
        if not part:
            continue
        for key, value in part.items():
            if key in merged:
                merged[key] = value
    return merged
