"""Response bodies and stream chunks in exactly OpenAI's shapes.

Kept apart from the routes so the shapes (which clients parse field by field)
are written once and are easy to compare with OpenAI's API reference.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def finish_reason(stats_reason: str | None) -> str:
    """lamina's GenerationStats.finish_reason -> OpenAI's ('cancelled' never reaches a client)."""
    return "length" if stats_reason == "length" else "stop"


def chat_completion(rid: str, model: str, text: str, reason: str,
                    use: dict[str, int]) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion", "created": now(), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": reason}],
            "usage": use}


def chat_chunk(rid: str, model: str, created: int, delta: dict[str, Any],
               reason: str | None = None) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}


def text_completion(rid: str, model: str, text: str, reason: str,
                    use: dict[str, int]) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": now(), "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}],
            "usage": use}


def text_chunk(rid: str, model: str, created: int, text: str,
               reason: str | None = None) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}]}


def usage_chunk(rid: str, model: str, created: int, obj: str,
                use: dict[str, int]) -> dict[str, Any]:
    """The extra last chunk sent when ``stream_options.include_usage`` is true."""
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [],
            "usage": use}


def embeddings(model: str, vectors: Sequence[Sequence[float]], encoding: str,
               prompt_tokens: int) -> dict[str, Any]:
    data = []
    for i, vec in enumerate(vectors):
        if encoding == "base64":  # little-endian float32, as OpenAI's SDK decodes it
            emb: Any = base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
        else:
            emb = [float(x) for x in vec]
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


def model_card(name: str, created: int, meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "lamina", **meta}


def error_event(status: int, message: str) -> dict[str, Any]:
    from lamina.runtime.server.errors import error_body

    return error_body(status, message)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event; ``data: [DONE]`` ends an OpenAI stream."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()
