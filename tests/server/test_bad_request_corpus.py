"""A corpus of bad requests over every field of every route, sent down ONE keep-alive
connection: each gets a 4xx in OpenAI's error shape naming the field (never a 500),
and the connection that carried it still serves the next request.

Bodies are serialised with ``json.dumps`` (ASCII escapes), so a lone surrogate
reaches the server as the valid JSON text ``"\\ud800"``, exactly as a buggy client
or a fuzzer would send it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

CHAT = "/v1/chat/completions"
TEXT = "/v1/completions"
EMBED = "/v1/embeddings"
EXTRACT = "/v1/extract"
LONE = "\ud800"
BAD_BYTES = b"\xff\xfe"  # not UTF-8
#: Base bodies that are valid and cheap (2 tokens), each field then broken alone.
BASE: dict[str, dict[str, Any]] = {
    CHAT: {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0},
    TEXT: {"prompt": "hi", "max_tokens": 2, "temperature": 0},
    EMBED: {"input": "hi"},
    EXTRACT: {"input": "马云在杭州", "task": "NER", "schema": ["人物"], "max_tokens": 100},
}

#: Sampler fields both generating routes share: (field, bad values).
SAMPLED = [
    ("model", [5, [], {}, LONE]),
    ("stream", ["maybe", [], {}, 7]),
    ("stream_options", ["yes", 5, {"include_usage": "maybe"}]),
    ("max_tokens", ["lots", 1.5, -1, 0, 10**6, 2**70, []]),
    ("temperature", ["hot", -1, [], {}]),
    ("top_p", ["x", 0, 7, -0.5]),
    ("seed", ["x", -1, 2**40, 1.5]),
    ("stop", [5, [5], [""], [LONE], {"a": 1}, ["x"] * 100 + [LONE]]),
    ("n", [2, 0, "x"]),
    ("logprobs", [True, 5]),
    ("presence_penalty", ["x", 3, -3]),
    ("frequency_penalty", ["x", 3, -3]),
    ("top_k", [-1, "x", 2**40, 1.5]),
    ("min_p", [-0.1, 2, "x"]),
    ("repeat_penalty", [0, -1, "x"]),
    ("repetition_penalty", [0, -1, "x"]),
]


def _deep_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


CHAT_ONLY = [
    ("messages", ["hi", 5, [], [5], [{"role": "user"}], [{"role": 5, "content": "x"}],
                  [{"role": "wizard", "content": "x"}], [{"role": "user", "content": 5}],
                  [{"role": "user", "content": LONE}],
                  [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
                  [{"role": "user", "content": [{"type": "text", "text": LONE}]}],
                  [{"role": LONE, "content": "x"}],
                  [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
                  [{"role": "user", "content": "杭州的故事 " * 1400}],  # > context, < body cap
                  [{"role": "tool", "content": 5}],
                  [{"role": "assistant", "content": "", "tool_calls": "x"}],
                  [{"role": "assistant", "tool_calls": [{"function": {"name": 5}}]}],
                  [{"role": "user", "content": "x",
                    "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]]),
    ("max_completion_tokens", ["lots", -1, 10**6]),
    ("tools", [5, "x", [5], [{"type": "x"}], [{"type": "function"}],
               [{"type": "function", "function": {"name": "bad name!"}}],
               [{"type": "function", "function": {"name": LONE}}],
               [{"type": "function", "function": {"name": "f", "parameters": 5}}],
               [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}],
               [{"type": "function", "function": {"name": "f"}}] * 2]),
    ("tool_choice", ["sometimes", 5, "required",
                     {"type": "function", "function": {"name": "missing"}}]),
    ("functions", [[{"name": "f"}]]),
    ("parallel_tool_calls", ["maybe", []]),
    ("response_format", ["json", 5, {"type": "xml"}, {"type": "json_schema"},
                         {"type": "json_schema", "json_schema": {"schema": 5}},
                         {"type": "json_schema", "json_schema": {"schema": {"type": "nope"}}},
                         {"type": "json_schema", "json_schema": {"schema": {"$ref": "#/x"}}},
                         {"type": "json_schema", "json_schema": {"schema": _deep_schema(400)}},
                         {"type": "json_schema",
                          "json_schema": {"schema": {"type": "string", "pattern": LONE}}}]),
]
TEXT_ONLY = [
    ("prompt", [5, [1, 2], ["a", "b"], [], {}, LONE, [LONE], None]),
    ("echo", [True, "maybe"]),
    ("suffix", ["x", 5]),
    ("best_of", [2, "x"]),
]
EMBED_FIELDS = [
    ("input", [5, [], [1], "", [""], LONE, ["ok", LONE], {}, None]),
    ("model", [5, LONE]),
    ("encoding_format", ["hex", 5]),
    ("dimensions", ["x", 3, -1, 1.5]),
]
EXTRACT_FIELDS = [
    ("input", ["", 5, LONE, None]),
    ("task", ["XYZ", 5, LONE]),
    ("schema", [5, "人物", [5], {}, [LONE]]),
    ("lang", ["fr", 5]),
    ("model", [5, LONE]),
    ("split_num", [0, "x", -3]),
    ("use_grammar", ["maybe", []]),
    ("max_tokens", [0, 10**6, "x"]),
]


def field_cases() -> list[tuple[str, str, Any]]:
    """(route, field, bad value) for every field of every route."""
    cases = []
    for route, fields in ((CHAT, SAMPLED + CHAT_ONLY), (TEXT, SAMPLED + TEXT_ONLY),
                          (EMBED, EMBED_FIELDS), (EXTRACT, EXTRACT_FIELDS)):
        for name, values in fields:
            cases.extend((route, name, v) for v in values)
    return cases


def raw_cases() -> list[tuple[str, bytes, int | None]]:
    """(route, raw body, expected status or None for any 4xx): the body as a whole."""
    out: list[tuple[str, bytes, int | None]] = []
    for route in BASE:
        good = json.dumps(BASE[route]).encode()
        out += [
            (route, b"{not json", 400), (route, b"", 400), (route, b"[]", 400),
            (route, b'"text"', 400), (route, b"null", 400), (route, b"5", 400),
            (route, b"[" * 5000 + b"]" * 5000, 400),  # nested past the parser's limit
            (route, b'{"a":' * 3000 + b"1" + b"}" * 3000, 400),
            (route, good[:-1] + b', "x": "' + b"y" * 70000 + b'"}', 413),  # over --max-body
            (route, good[:-1] + b', "\\udc00": 1}', 400),  # lone surrogate in a key
            (route, good[:-1] + b', "t": "' + BAD_BYTES + b'"}', 400),  # raw non-UTF-8 bytes
            (route, b'{"temperature": NaN, "max_tokens": Infinity}', None),
        ]
    out += [
        (CHAT, json.dumps(BASE[CHAT]).encode().replace(b'"hi"', b'"' + BAD_BYTES + b'"'), 400),
        (CHAT, json.dumps({**BASE[CHAT], "temperature": 0}).encode()
         .replace(b'"temperature": 0', b'"temperature": NaN'), 400),
        (TEXT, json.dumps(BASE[TEXT]).encode().replace(b'"temperature": 0',
                                                       b'"temperature": 1e999'), 400),
    ]
    return out


def _param_names(field: str, param: str | None, message: str) -> bool:
    return (param is not None and (param == field or param.startswith(field + ".")
                                   or param.startswith(field + "["))) or f"'{field}" in message


def _same_connection(resp: httpx.Response, ports: set[int]) -> None:
    stream = resp.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        ports.add(sock.getsockname()[1])


def _check_error(resp: httpx.Response, where: str, problems: list[str]) -> dict[str, Any] | None:
    if not 400 <= resp.status_code < 500:
        problems.append(f"{where}: HTTP {resp.status_code} {resp.text[:200]}")
        return None
    if resp.headers.get("connection", "").lower() == "close":
        problems.append(f"{where}: the server closed the connection")
    try:
        err = resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        problems.append(f"{where}: not an OpenAI error body: {resp.text[:200]}")
        return None
    if set(err) != {"message", "type", "param", "code"} or "Traceback" in resp.text:
        problems.append(f"{where}: bad error shape {err}")
    return err


def test_bad_request_corpus_gets_4xx_naming_the_field_on_one_connection(server):
    problems: list[str] = []
    ports: set[int] = set()
    headers = {**server.headers(), "content-type": "application/json"}
    n_sent = 0
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        for route, name, value in field_cases():
            body = json.dumps({**BASE[route], name: value}).encode()
            where = f"{route} {name}={json.dumps(value)[:60]}"
            resp = http.post(route, content=body)
            n_sent += 1
            _same_connection(resp, ports)
            err = _check_error(resp, where, problems)
            if err is not None and not _param_names(name, err["param"], err["message"]):
                problems.append(f"{where}: error does not name '{name}': {err}")
        for route, raw, status in raw_cases():
            where = f"{route} raw {raw[:40]!r}...{len(raw)} bytes"
            resp = http.post(route, content=raw)
            n_sent += 1
            _same_connection(resp, ports)
            if status is None and resp.status_code == 200:
                continue
            err = _check_error(resp, where, problems)
            if err is not None and status is not None and resp.status_code != status:
                problems.append(f"{where}: HTTP {resp.status_code}, expected {status}: {err}")
        for path in ("/v1/models/nope", "/v1/models/%ED%A0%80", "/v1/nowhere"):
            resp = http.get(path)
            _same_connection(resp, ports)
            _check_error(resp, f"GET {path}", problems)
        # The same connection still serves real work, for every route.
        for route, body in BASE.items():
            ok = http.post(route, content=json.dumps(body).encode())
            _same_connection(ok, ports)
            if ok.status_code != 200:
                problems.append(f"{route} after the corpus: HTTP {ok.status_code} {ok.text[:200]}")
    assert not problems, f"{len(problems)} of {n_sent} bad requests:\n" + "\n".join(problems)
    assert len(ports) == 1, f"the client had to reconnect: local ports {sorted(ports)}"
    assert n_sent > 250
    h = server.health()
    assert h["slots"]["busy"] == 0 and h["slots"]["waiting"] == 0
