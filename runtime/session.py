"""Multi-turn chat that keeps the KV cache between turns.

Each turn renders the whole conversation with the chat template and hands the
tokens to the model, which compares them with what its KV cache holds and
evaluates only the differing tail: normally just the new user message and the
template's markers. Undo, retry, a changed system prompt or dropped old turns
all go through the same path, so there is no second bookkeeping to get wrong.

When a conversation no longer fits the context, the oldest turns are dropped
(the system prompt is kept) and a notice says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.errors import FormatError, InputError, LaminaError
from lamina.files import atomic_output, require_file
from lamina.runtime.sampling import SamplingParams
from lamina.runtime.templates import get_template

if TYPE_CHECKING:  # pragma: no cover
    from lamina.runtime.model import GenerationStats, Model

SESSION_FORMAT = "lamina.chat/1"


class ChatSession:
    """A conversation with one model: ``send`` a message, get the (streamed) answer."""

    def __init__(self, model: Model, system: str | None = None, template: str | None = None,
                 params: SamplingParams | None = None,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.template = get_template(template) if template else model.template
        self.system = system
        self.params = params or model.default_params.replace(
            **dict(self.template.sampling_defaults))
        self.messages: list[dict[str, str]] = []  # user/assistant turns, no system
        self.notices: list[str] = []
        self.on_notice = on_notice
        self.context_used = 0

    # ---- state

    @property
    def history(self) -> list[dict[str, str]]:
        """The conversation as chat messages, the system prompt first when set."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [dict(m) for m in self.messages]

    @property
    def last_stats(self) -> GenerationStats:
        return self.model.last_stats

    def reset(self) -> None:
        """Forget the turns (the system prompt stays, and stays cached)."""
        self.messages.clear()
        self.context_used = 0

    def undo(self) -> str | None:
        """Remove the last exchange; returns the user message that was removed."""
        while self.messages and self.messages[-1]["role"] != "user":
            self.messages.pop()
        return self.messages.pop()["content"] if self.messages else None

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        if self.on_notice is not None:
            self.on_notice(text)

    # ---- turns

    def send(self, text: str, stream: bool = True, params: SamplingParams | None = None,
             **overrides: Any) -> str | Iterator[str]:
        """Add a user message and answer it. The answer joins the history when
        it ends, also when the stream is closed early (Ctrl-C): what was shown
        is what the model said."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("The message is empty.", hint="Type something to send.")
        self.messages.append({"role": "user", "content": text})
        return self._answer(stream, params, overrides)

    def retry(self, stream: bool = True, params: SamplingParams | None = None,
              **overrides: Any) -> str | Iterator[str]:
        """Answer the last user message again (the previous answer is discarded)."""
        while self.messages and self.messages[-1]["role"] == "assistant":
            self.messages.pop()
        if not self.messages:
            raise InputError("There is no message to retry yet.")
        return self._answer(stream, params, overrides)

    def _answer(self, stream: bool, params: SamplingParams | None,
                overrides: dict[str, Any]) -> str | Iterator[str]:
        p = params or self.params
        if overrides:
            p = p.replace(**overrides)
        try:
            tokens = self._fit(p)
        except BaseException:
            self.messages.pop()
            raise
        pieces = self.model._stream_tokens(tokens, p, None, tuple(p.stop) + self.template.stop)
        it = self._collect(pieces, len(tokens))
        if stream:
            return it
        return "".join(it)

    def _collect(self, pieces: Iterator[str], n_prompt: int) -> Iterator[str]:
        parts: list[str] = []
        try:
            for piece in pieces:
                parts.append(piece)
                yield piece
        finally:
            pieces.close()
            stats = self.model.last_stats
            self.context_used = n_prompt + stats.completion_tokens
            self.messages.append({"role": "assistant", "content": "".join(parts).strip()})

    def _fit(self, params: SamplingParams) -> list[int]:
        """Prompt tokens for the conversation, dropping the oldest turns until
        the prompt plus room for the answer fits the context."""
        n_ctx = self.model.n_ctx
        reserve = min(params.max_tokens, n_ctx // 2)
        dropped = 0
        while True:
            tokens = self.model.chat_tokens(self.history, self.template)
            if len(tokens) + reserve <= n_ctx:
                break
            if len(self.messages) <= 1:
                raise LaminaError(
                    f"The message is too long: {len(tokens)} prompt tokens plus {reserve} for "
                    f"the answer do not fit the context of {n_ctx} tokens.",
                    hint="Send a shorter message, a shorter system prompt, or load the model "
                         "with a larger --ctx.",
                )
            self.messages.pop(0)  # the oldest user message...
            while len(self.messages) > 1 and self.messages[0]["role"] == "assistant":
                self.messages.pop(0)  # ...and its answer
            dropped += 1
        if dropped:
            self._notice(f"The conversation was too long for the context ({n_ctx} tokens): "
                         f"dropped the {dropped} oldest turn(s), kept the system prompt.")
        return tokens

    # ---- files

    def to_dict(self) -> dict[str, Any]:
        return {"format": SESSION_FORMAT, "model": self.model.name, "template": self.template.name,
                "system": self.system, "params": self.params.as_dict(), "messages": self.messages}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the conversation as JSON (atomically; an existing file is replaced)."""
        out = Path(path)
        with atomic_output(out, force=True) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2), "utf-8")
        return out

    def load(self, path: str | os.PathLike[str]) -> None:
        """Replace the conversation with one saved by :meth:`save`."""
        p = require_file(path, "session file")
        try:
            data = json.loads(p.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"'{p}' is not a saved lamina chat (invalid JSON: {exc}).") from exc
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise FormatError(f"'{p}' is not a saved lamina chat (format '{SESSION_FORMAT}').",
                              hint="Save one with /save in `lamina chat` or ChatSession.save().")
        messages = data.get("messages")
        if not isinstance(messages, list) or not all(
                isinstance(m, dict) and m.get("role") in ("user", "assistant")
                and isinstance(m.get("content"), str) for m in messages):
            raise FormatError(f"'{p}' has malformed messages (need role user/assistant and text).")
        system = data.get("system")
        if system is not None and not isinstance(system, str):
            raise FormatError(f"'{p}' has a malformed system prompt.")
        template = data.get("template")
        if isinstance(template, str) and template != self.template.name:
            try:
                self.template = get_template(template)
            except LaminaError:
                pass  # a file's own Jinja template: keep the current one
        params = data.get("params")
        if isinstance(params, dict):
            try:
                self.params = SamplingParams(**{**params, "stop": tuple(params.get("stop", ()))})
            except (TypeError, LaminaError) as exc:
                raise FormatError(f"'{p}' has invalid sampling parameters: {exc}") from exc
        self.system = system
        self.messages = [{"role": m["role"], "content": m["content"]} for m in messages]
