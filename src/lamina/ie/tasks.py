"""The IE tasks as data: task descriptions, schema shapes, split defaults.

The task descriptions are the exact strings the IEPile/OneKE models were
trained on (DeepKE ``ie2instruction``); a model only follows the instruction
it saw in training, so they are reproduced verbatim, never reworded.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.errors import SchemaError

LANGS = ("zh", "en")

#: (task, lang) -> task description, byte for byte as in the training data.
DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("NER", "zh"): "你是专门进行实体抽取的专家。请从input中抽取出符合schema定义的实体，不存在的实体类型返回空列表。请按照JSON字符串的格式回答。",
    ("RE", "zh"): "你是专门进行关系抽取的专家。请从input中抽取出符合schema定义的关系三元组，不存在的关系返回空列表。请按照JSON字符串的格式回答。",
    ("EE", "zh"): "你是专门进行事件提取的专家。请从input中抽取出符合schema定义的事件，不存在的事件返回空列表，不存在的论元返回NAN，如果论元存在多值请返回列表。请按照JSON字符串的格式回答。",
    ("EET", "zh"): "你是专门进行事件提取的专家。请从input中抽取出符合schema定义的事件类型及事件触发词，不存在的事件返回空列表。请按照JSON字符串的格式回答。",
    ("EEA", "zh"): "你是专门进行事件论元提取的专家。请从input中抽取出符合schema定义的事件论元及论元角色，不存在的论元返回NAN或空字典，如果论元存在多值请返回列表。请按照JSON字符串的格式回答。",
    ("KG", "zh"): "你是一个图谱实体知识结构化专家。根据输入实体类型(entity type)的schema描述，从文本中抽取出相应的实体实例和其属性信息，不存在的属性不输出, 属性存在多值就返回列表，并输出为可解析的json格式。",
    ("NER", "en"): "You are an expert in named entity recognition. Please extract entities that match the schema definition from the input. Return an empty list if the entity type does not exist. Please respond in the format of a JSON string.",
    ("RE", "en"): "You are an expert in relationship extraction. Please extract relationship triples that match the schema definition from the input. Return an empty list for relationships that do not exist. Please respond in the format of a JSON string.",
    ("EE", "en"): "You are an expert in event extraction. Please extract events from the input that conform to the schema definition. Return an empty list for events that do not exist, and return NAN for arguments that do not exist. If an argument has multiple values, please return a list. Respond in the format of a JSON string.",
    ("EET", "en"): "You are an expert in event extraction. Please extract event types and event trigger words from the input that conform to the schema definition. Return an empty list for non-existent events. Please respond in the format of a JSON string.",
    ("EEA", "en"): "You are an expert in event argument extraction. Please extract event arguments and their roles from the input that conform to the schema definition, which already includes event trigger words. If an argument does not exist, return NAN or an empty dictionary. Please respond in the format of a JSON string.",
    ("KG", "en"): "You are an expert in structured knowledge systems for graph entities. Based on the schema description of the input entity type, you extract the corresponding entity instances and their attribute information from the text. Attributes that do not exist should not be output. If an attribute has multiple values, a list should be returned. The results should be output in a parsable JSON format.",
}

#: The placeholder the models write for an event argument that is absent.
NAN = "NAN"


@dataclass(frozen=True)
class TaskSpec:
    """What one task's schema items look like and how long a chunk may be.

    ``item_kind`` is "label" (a plain string: entity type, relation, event type)
    or "object" (a dict whose ``key_field`` names the output key).
    """

    name: str
    title: str
    split_num: int
    item_kind: str
    key_field: str | None = None
    list_field: str | None = None  # the dict field holding roles/attributes
    defaults: tuple[tuple[str, object], ...] = ()
    #: Another name accepted for ``list_field`` on input (re-emitted as list_field).
    list_alias: str | None = None


TASKS: dict[str, TaskSpec] = {
    "NER": TaskSpec("NER", "named entity recognition", 6, "label"),
    "RE": TaskSpec("RE", "relation extraction", 4, "label"),
    "EE": TaskSpec("EE", "event extraction", 4, "object", "event_type", "arguments",
                   (("trigger", True),)),
    "EET": TaskSpec("EET", "event type + trigger extraction", 4, "label"),
    "EEA": TaskSpec("EEA", "event argument extraction", 4, "object", "event_type", "arguments"),
    # IEPile/OneKE KG schemas say "attributes" (DeepKE's data/KG files); the
    # singular, which lamina once wrote, is still read.
    "KG": TaskSpec("KG", "entity knowledge (KG) extraction", 1, "object", "entity_type",
                   "attributes", list_alias="attribute"),
}


def get_task(name: str) -> TaskSpec:
    """Look up a task by name (case-insensitive); a clear error for unknown ones."""
    spec = TASKS.get(str(name).upper())
    if spec is None:
        raise SchemaError(
            f"Unknown extraction task '{name}'.",
            hint=f"Choose one of: {', '.join(TASKS)}.",
        )
    return spec


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise SchemaError(f"Unknown instruction language '{lang}'.", hint="Use --lang zh or --lang en.")
    return lang


def description(task: str, lang: str = "zh") -> str:
    """The trained task description for ``task`` in ``lang``."""
    return DESCRIPTIONS[(get_task(task).name, check_lang(lang))]
