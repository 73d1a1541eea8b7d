"""``response_format`` -> a GBNF grammar that constrains generation.

``{"type": "json_object"}`` uses llama.cpp's generic JSON grammar;
``{"type": "json_schema", "json_schema": {"schema": {...}}}`` is converted with
llama-cpp-python's JSON-Schema-to-GBNF converter, so the model can only emit
text that parses and matches the schema (tiny or weak models included).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from lamina.server.errors import APIError


@lru_cache(maxsize=64)
def _schema_grammar(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(schema_json)


def check_schema(schema: Any, param: str) -> None:
    """A 400 naming ``param`` unless ``schema`` is a valid JSON Schema (its own metaschema).

    The converter turns unknown keywords or types into something rather than
    failing, so without this a typo would silently constrain nothing.
    """
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise APIError(400, f"{param} must be a JSON Schema object, got "
                            f"{type(schema).__name__}.", param=param)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        raise APIError(400, f"{param} is not a valid JSON Schema: at {where}: "
                            f"{exc.message:.300}", param=param) from exc
    except RecursionError as exc:
        raise APIError(400, f"{param} is nested too deeply to check.", param=param) from exc


def schema_grammar(schema: Any, param: str) -> str:
    """The GBNF text allowing exactly the JSON values ``schema`` accepts; 400 if it can't."""
    check_schema(schema, param)
    try:
        return _schema_grammar(json.dumps(schema, sort_keys=True, ensure_ascii=False))
    except Exception as exc:  # the converter raises plain exceptions on bad schemas
        raise APIError(400, f"{param} could not be turned into a grammar: "
                            f"{type(exc).__name__}: {exc}", param=param) from exc


def grammar_for(response_format: dict[str, Any] | None) -> str | None:
    """The GBNF text for an OpenAI ``response_format``, or None for plain text."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        from llama_cpp.llama_grammar import JSON_GBNF

        return JSON_GBNF
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise APIError(400, "response_format.json_schema.schema must be a JSON Schema "
                                "object, e.g. {\"type\": \"json_schema\", \"json_schema\": "
                                "{\"name\": \"x\", \"schema\": {\"type\": \"object\", ...}}}.",
                           param="response_format.json_schema.schema")
        return schema_grammar(schema, "response_format.json_schema.schema")
    raise APIError(400, f"response_format.type {kind!r} is not supported; use 'text', "
                        "'json_object' or 'json_schema'.", param="response_format.type")
