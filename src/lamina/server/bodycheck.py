"""Text a request body may not carry: bytes that are not UTF-8, lone surrogates.

JSON allows ``"\\ud800"`` (an escape for half of a UTF-16 pair) on its own, and
Python's parser turns it into a string that cannot be encoded back to UTF-8,
so it would fail deep inside tokenisation or when an error message quotes it.
Such bodies are refused up front with a 400 naming the field; the walk only
runs when the raw bytes hold a surrogate escape, so ordinary bodies cost one
UTF-8 check.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lamina.server.errors import APIError

#: A JSON escape of a UTF-16 surrogate (paired or not); only then is the body parsed.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
#: A surrogate left alone in a decoded string (pairs were combined by the parser).
_LONE = re.compile("[\ud800-\udfff]")


def check_body(body: bytes) -> APIError | None:
    """The 400 for a body holding text that is not Unicode, or None if it is fine."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Undecodable bytes become lone surrogates (U+DC80-U+DCFF) here, so the
        # same walk finds the field that holds them.
        path = _parsed_path(body.decode("utf-8", "surrogateescape"))
        where = f"'{path}'" if path else "The request body"
        return APIError(400, f"{where} is not valid UTF-8 (byte 0x{body[exc.start]:02x} at "
                             f"position {exc.start} of the body). Send JSON encoded as UTF-8.",
                        param=path or None, code="invalid_encoding")
    if not _SURROGATE_ESCAPE.search(body):
        return None
    path = _parsed_path(body)
    if path is None:
        return None
    where = f"'{path}'" if path else "The request body"
    return APIError(400, f"{where} holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
                         "escape), which is not a Unicode character. Send valid text: escape "
                         "characters beyond U+FFFF as a surrogate pair, or send them as UTF-8.",
                    param=path or None, code="invalid_unicode")


def _parsed_path(body: bytes | str) -> str | None:
    """The path of the first bad string in a JSON body; None when it is not JSON."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the route's parser reports that
    return lone_surrogate_path(data)


def lone_surrogate_path(data: Any) -> str | None:
    """Dotted path ("messages.0.content") of the first string holding a lone surrogate.

    Iterative, so a deeply nested body cannot exhaust the stack; a key that
    holds one is reported by its parent's path plus the key with the surrogate
    escaped.
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _LONE.search(value):
                return path
        elif isinstance(value, dict):
            items = []
            for key, item in value.items():
                if _LONE.search(key):
                    name = key.encode("utf-8", "backslashreplace").decode("utf-8")
                    return f"{path}.{name}" if path else name
                items.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}.{i}" if path else str(i), item)
                                   for i, item in enumerate(value)]))
    return None
