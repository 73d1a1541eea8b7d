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

if TYPE_CHECKING:  # pragma: no cover
    from lamina.runtime.model import GenerationStats, Model

SESSION_FORMAT = "lamina.chat/1"


class ChatSession:
    """A conversation with one model: ``send`` a message, get the (streamed) answer."""

    def __init__(self, model: Model, system: str | None = None, template: str | None = None,
                 params: SamplingParams | None = None,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.template = model.bind_template(template) if template else model.template
        self.system = system
        self.params = params or model.default_params.replace(
            **dict(self.template.sampling_defaults))
        self.messages: list[dict[str, str]] = []  # user/assistant turns, no system
        self.notices: list[str] = []
        self.on_notice = on_notice
        self.context_used = 0
        self.last_prompt_tokens: list[int] = []
        # (prompt text, KV tokens after the answer, index of that answer in messages):
        # lets the next turn append to the exact tokens the model generated.
        self._cont: tuple[str, list[int], int] | None = None

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
        self._cont = None

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
        p = self._resolve(params, overrides)
        self.messages.append({"role": "user", "content": text})
        return self._answer(stream, p)

    def retry(self, stream: bool = True, params: SamplingParams | None = None,
              **overrides: Any) -> str | Iterator[str]:
        """Answer the last user message again (the previous answer is discarded)."""
        while self.messages and self.messages[-1]["role"] == "assistant":
            self.messages.pop()
        if not self.messages:
            raise InputError("There is no message to retry yet.")
        return self._answer(stream, self._resolve(params, overrides))

    def _resolve(self, params: SamplingParams | None, overrides: dict[str, Any]) -> SamplingParams:
        p = params or self.params
        return p.replace(**overrides) if overrides else p

    def _answer(self, stream: bool, p: SamplingParams) -> str | Iterator[str]:
        try:
            text, tokens = self._fit(p)
        except BaseException:
            self.messages.pop()
            raise
        self.last_prompt_tokens = tokens
        pieces = self.model._stream_tokens(tokens, p, None, tuple(p.stop) + self.template.stop,
                                           lstrip=True, reuse_any=True)
        it = self._collect(pieces, text, tokens)
        if stream:
            return it
        return "".join(it)

    def _collect(self, pieces: Iterator[str], prompt_text: str,
                 prompt_tokens: list[int]) -> Iterator[str]:
        parts: list[str] = []
        try:
            for piece in pieces:
                parts.append(piece)
                yield piece
        except Exception:
            # a failure (not an interruption): the question goes unanswered, so drop it
            pieces.close()  # type: ignore[attr-defined]
            if self.messages and self.messages[-1]["role"] == "user":
                self.messages.pop()
            self._cont = None
            raise
        except BaseException:  # Ctrl-C or the stream closed: keep what was shown
            pieces.close()  # type: ignore[attr-defined]
            self._finish("".join(parts), prompt_text, prompt_tokens)
            raise
        self._finish("".join(parts), prompt_text, prompt_tokens)

    def _finish(self, answer: str, prompt_text: str, prompt_tokens: list[int]) -> None:
        model = self.model
        kv = [int(t) for t in model.llama.input_ids[: model.llama.n_tokens]]
        self.context_used = len(kv)
        self.messages.append({"role": "assistant", "content": answer.strip()})
        self._cont = None
        # Continue from the exact tokens only when they say what the history says
        # (not after a stop string or a cut-off character, which the text lacks).
        if kv[: len(prompt_tokens)] == prompt_tokens and \
                model.detokenize(kv[len(prompt_tokens):]).lstrip() == answer:
            self._cont = (prompt_text, kv, len(self.messages) - 1)

    def _continued(self) -> tuple[str, list[int]] | None:
        """Prompt for a new user message appended to the exact tokens of the last
        turn, so only the new message is evaluated (re-tokenizing the answer text
        could split it differently from how the model generated it)."""
        if self._cont is None:
            return None
        prev_text, kv, index = self._cont
        if len(self.messages) != index + 2 or self.messages[index]["role"] != "assistant":
            return None
        marker = "\x00lamina-answer\x00"
        history = self.history
        offset = len(history) - len(self.messages)
        history[offset + index] = {"role": "assistant", "content": marker}
        text = self.template.render(history, add_generation_prompt=True)
        before, found, after = text.partition(marker)
        if not found or not before.startswith(prev_text) or before[len(prev_text):].strip():
            return None
        return text, kv + self.model.tokenize(after, add_bos=False, special=True)

    def _fit(self, params: SamplingParams) -> tuple[str, list[int]]:
        """Prompt text and tokens for the conversation, dropping the oldest turns
        until the prompt plus room for the answer fits the context."""
        n_ctx = self.model.n_ctx
        reserve = min(params.max_tokens, n_ctx // 2)
        dropped = 0
        cont = self._continued()
        if cont is not None and len(cont[1]) + reserve <= n_ctx:
            return cont
        head = self.history[: len(self.history) - len(self.messages)]  # the system prompt
        kept = list(self.messages)
        while True:
            text = self.template.render(head + kept, add_generation_prompt=True)
            tokens = self.model.tokenize(text)
            if len(tokens) + reserve <= n_ctx:
                break
            if len(kept) <= 1:
                raise LaminaError(
                    f"The message is too long: {len(tokens)} prompt tokens plus {reserve} for "
                    f"the answer do not fit the context of {n_ctx} tokens.",
                    hint="Send a shorter message, a shorter system prompt, or load the model "
                         "with a larger --ctx.",
                )
            kept.pop(0)  # the oldest user message...
            while len(kept) > 1 and kept[0]["role"] == "assistant":
                kept.pop(0)  # ...and its answer
            dropped += 1
        if dropped:
            self.messages[:] = kept
            self._notice(f"The conversation was too long for the context ({n_ctx} tokens): "
                         f"dropped the {dropped} oldest turn(s), kept the system prompt.")
        return text, tokens

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
                self.template = self.model.bind_template(template)
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
        self._cont = None
