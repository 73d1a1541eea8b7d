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
from typing import TYPE_CHECKING, Any

import numpy as np

from lamina.server.tools import CallEvent, CallParser, CallText

if TYPE_CHECKING:  # pragma: no cover
    from lamina.templates import ToolFormat


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def finish_reason(stats_reason: str | None) -> str:
    """lamina's GenerationStats.finish_reason -> OpenAI's ('cancelled' never reaches a client)."""
    return stats_reason if stats_reason in ("length", "tool_calls") else "stop"


class Answer:
    """One generating request's answer in OpenAI's shapes, whole or streamed.

    Chat and text completions differ only here (object names, where the text
    goes, the chat stream's opening role chunk); the routes share everything
    else through one code path. Stream chunks carry the time generation began.
    """

    id_prefix = ""
    object = ""
    chunk_object = ""

    def __init__(self, model: str) -> None:
        self.rid = new_id(self.id_prefix)
        self.model = model
        self.created = now()

    def _message(self, text: str) -> dict[str, Any]:
        """Where the whole answer's text goes in its choice."""
        raise NotImplementedError

    def whole(self, pieces: Sequence[str], reason: str, use: dict[str, int]) -> dict[str, Any]:
        """The non-streaming response body for the generation's ``pieces``."""
        return self._whole(self._message("".join(pieces)), reason, use)

    def _whole(self, choice: dict[str, Any], reason: str, use: dict[str, int]) -> dict[str, Any]:
        return {"id": self.rid, "object": self.object, "created": now(), "model": self.model,
                "choices": [{"index": 0, **choice, "logprobs": None, "finish_reason": reason}],
                "usage": use}

    def chunks(self, pieces: Sequence[str]) -> list[dict[str, Any]]:
        """Stream chunks for pieces just generated (none for no text)."""
        text = "".join(pieces)
        return [self.piece(text)] if text else []

    def closing(self, reason: str) -> list[dict[str, Any]]:
        """The chunks that end the stream's choice (before the optional usage chunk)."""
        return [self.last(reason)]

    def _chunk(self, choice: dict[str, Any], reason: str | None) -> dict[str, Any]:
        return {"id": self.rid, "object": self.chunk_object, "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, **choice, "logprobs": None, "finish_reason": reason}]}

    def head(self) -> list[dict[str, Any]]:
        """Chunks sent before the first piece of text."""
        return []

    def piece(self, text: str) -> dict[str, Any]:
        """A chunk carrying generated text."""
        raise NotImplementedError

    def last(self, reason: str) -> dict[str, Any]:
        """The chunk that ends the choice with its finish reason."""
        raise NotImplementedError

    def usage(self, use: dict[str, int]) -> dict[str, Any]:
        """The extra last chunk sent when ``stream_options.include_usage`` is true."""
        return {"id": self.rid, "object": self.chunk_object, "created": self.created,
                "model": self.model, "choices": [], "usage": use}


class ChatAnswer(Answer):
    """/v1/chat/completions: text in ``message``/``delta``, a role chunk first."""

    id_prefix = "chatcmpl"
    object = "chat.completion"
    chunk_object = "chat.completion.chunk"

    def _message(self, text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}}

    def head(self) -> list[dict[str, Any]]:
        return [self._chunk({"delta": {"role": "assistant", "content": ""}}, None)]

    def piece(self, text: str) -> dict[str, Any]:
        return self._chunk({"delta": {"content": text}}, None)

    def last(self, reason: str) -> dict[str, Any]:
        return self._chunk({"delta": {}}, reason)


class ToolChatAnswer(ChatAnswer):
    """A chat answer that may hold a tool call: ``message.tool_calls`` / ``delta.tool_calls``.

    The pieces are content (``str``) and the call's text (``CallText``), which a
    ``CallParser`` reads as it comes: the call's first chunk carries its id, type
    and name with empty arguments, later ones argument text, as OpenAI streams.
    A call cut off before its name was complete is returned as content.
    """

    def __init__(self, model: str, fmt: ToolFormat) -> None:
        super().__init__(model)
        self.parser = CallParser(fmt)

    def _call_chunk(self, event: CallEvent) -> dict[str, Any]:
        call: dict[str, Any] = {"index": event.index}
        if event.id is not None:
            call.update(id=event.id, type="function",
                        function={"name": event.name, "arguments": event.arguments})
        else:
            call["function"] = {"arguments": event.arguments}
        return self._chunk({"delta": {"tool_calls": [call]}}, None)

    def chunks(self, pieces: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        content: list[str] = []
        for piece in pieces:
            if isinstance(piece, CallText):
                out.extend(super().chunks(content))
                content = []
                out.extend(self._call_chunk(e) for e in self.parser.feed(piece))
            else:
                content.append(piece)
        return out + super().chunks(content)

    def _finish_call(self, reason: str) -> tuple[list[CallEvent], str]:
        """The call's last events, and the call text to show as content if it never began."""
        events = self.parser.finish(complete=reason == "tool_calls")
        unread = self.parser.buffer if self.parser.call is None else ""
        return events, unread

    def closing(self, reason: str) -> list[dict[str, Any]]:
        events, unread = self._finish_call(reason)
        out = [self._call_chunk(e) for e in events]
        if unread:
            out.append(self.piece(unread))
        return [*out, self.last(self._reason(reason))]

    def _reason(self, reason: str) -> str:
        return "stop" if reason == "tool_calls" and self.parser.call is None else reason

    def whole(self, pieces: Sequence[str], reason: str, use: dict[str, int]) -> dict[str, Any]:
        content = "".join(p for p in pieces if not isinstance(p, CallText))
        for piece in pieces:
            if isinstance(piece, CallText):
                self.parser.feed(piece)
        _events, unread = self._finish_call(reason)
        message: dict[str, Any] = {"role": "assistant", "content": (content + unread) or None}
        call = self.parser.call
        if call is not None:
            message["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name,
                                                   "arguments": call.arguments}}]
        return self._whole({"message": message}, self._reason(reason), use)


class TextAnswer(Answer):
    """/v1/completions: text in ``text``, in the answer and in every chunk."""

    id_prefix = "cmpl"
    object = "text_completion"
    chunk_object = "text_completion"

    def _message(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def piece(self, text: str) -> dict[str, Any]:
        return self._chunk({"text": text}, None)

    def last(self, reason: str) -> dict[str, Any]:
        return self._chunk({"text": ""}, reason)


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
    from lamina.server.errors import error_body

    return error_body(status, message)


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event; ``data: [DONE]`` ends an OpenAI stream."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()
