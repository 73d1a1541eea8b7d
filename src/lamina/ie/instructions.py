"""Build the model input: IEPile instruction JSON, or the seed-000 pair format.

IEPile/OneKE models read ``json.dumps({"instruction", "schema", "input"},
ensure_ascii=False)`` as the user turn of their chat template; the field
order and json.dumps' default separators are part of the trained format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lamina.errors import FormatError, SchemaError
from lamina.ie.tasks import description

#: Seed-000 style: categories listed in the instruction, answer "类别_实体&类别_实体".
PAIR_SEP = "&"
PAIR_JOIN = "_"


def build_instruction(task: str, schema: Sequence[Any] | Mapping[str, str], text: str,
                      lang: str = "zh") -> str:
    """The IEPile instruction string for one schema chunk."""
    return json.dumps({"instruction": description(task, lang), "schema": schema, "input": text},
                      ensure_ascii=False)


def parse_instruction(instruction: str) -> dict[str, Any]:
    """Read an IEPile instruction string (test files carry it ready-made)."""
    try:
        data = json.loads(instruction)
    except (json.JSONDecodeError, TypeError) as exc:
        raise FormatError("The 'instruction' field is not an IEPile instruction JSON string.",
                          hint='Expected {"instruction": ..., "schema": [...], "input": ...}.') from exc
    if not isinstance(data, dict) or "schema" not in data or "input" not in data:
        raise FormatError("The 'instruction' field lacks \"schema\" or \"input\".")
    return data


def build_pair_instruction(categories: Sequence[str]) -> str:
    """Seed-000 NER instruction: list the categories, ask for '类别_实体' pairs."""
    names = ",".join(f"'{c}'" for c in categories)
    return (f"你现在是一个命名实体识别模型，请你帮我抽取出命名实体识别类别为{names}的二元组，"
            f"二元组内部用'{PAIR_JOIN}'连接，二元组之间用'{PAIR_SEP}'分割。")


def pair_user_turn(categories: Sequence[str], text: str, instruction: str | None = None) -> str:
    """Instruction and input as one user turn (Alpaca's instruction + input); a
    record's own ``instruction`` (seed 000's data files carry one) replaces
    lamina's."""
    head = build_pair_instruction(categories) if instruction is None else instruction
    return f"{head}\n{text}"


_CATEGORY_LIST = re.compile(r"类别为\s*((?:['‘\"][^'’\"]+['’\"]\s*[,，、]?\s*)+)")
_QUOTED = re.compile(r"['‘\"]([^'’\"]+)['’\"]")


def pair_categories(instruction: str) -> list[str]:
    """The categories a seed-000 instruction lists ("...类别为'a','b'的二元组..."),
    in order; they bound the answer's grammar and parsing when no schema is given."""
    m = _CATEGORY_LIST.search(instruction)
    names = list(dict.fromkeys(_QUOTED.findall(m.group(1)))) if m else []
    if not names:
        raise SchemaError("Cannot tell the categories from this record's instruction "
                          "(seed 000 lists them as 类别为'a','b',...).",
                          hint='Give them with --schema \'["类别1","类别2"]\'.')
    return names


def render_prompt(template: Any, user: str, history: Sequence[Mapping[str, str]] = ()) -> str:
    """Wrap one user turn in the model's chat template (alpaca2 for OneKE), after the
    turns of ``history`` (few-shot demonstrations: user, assistant, ...)."""
    messages = [dict(m) for m in history] + [{"role": "user", "content": user}]
    return template.render(messages, add_generation_prompt=True)
