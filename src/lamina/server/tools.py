"""OpenAI tool calling: generate a call under a grammar, read it back as ``tool_calls``.

How a request with ``tools`` runs (``ToolRun``, on the slot's thread):

* ``tool_choice`` ``required`` or a named function: the whole answer is
  generated under a grammar that allows exactly one call, in the model's tool
  format (``lamina.templates.ToolFormat``), to one of the allowed functions,
  with arguments valid for that function's JSON Schema.
* ``auto`` in a format the template knows: the answer is generated freely,
  watching for the format's trigger (``<tool_call>`` anywhere, or Llama-3's
  ``{`` at the start). Text before it is the message content; at the trigger,
  free generation stops and the call is finished under the grammar, continuing
  from the text so far, so a call the model chooses to make always has valid
  arguments too.
* ``auto`` in lamina's JSON format (templates that do not know tools): the whole
  answer is generated under a grammar that allows one call or one
  ``{"response": "..."}`` object; the reply's text is decoded from its JSON
  string as it arrives (``_Envelope``).
* ``none``: tools are not shown to the model and no call is read.

The run yields text: plain ``str`` pieces are content, ``CallText`` pieces are
the call as the model wrote it, which ``CallParser`` turns into the function
name and the arguments text (streamed as OpenAI's argument deltas).
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lamina.ie.grammar import gbnf_literal
from lamina.server.backend import Usage

if TYPE_CHECKING:  # pragma: no cover
    from lamina.server.backend import Backend
    from lamina.templates import ToolFormat


@dataclass(frozen=True)
class ToolSpec:
    """One callable function: its name and the JSON Schema of its arguments."""

    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolPlan:
    """What a chat request asks of tools, validated (see ``ChatCompletionRequest``)."""

    tools: list[dict[str, Any]]  # OpenAI-style definitions, as the template renders them
    specs: list[ToolSpec]
    mode: str  # "auto" or "required" (a named function: required, specs narrowed to it)


class CallText(str):
    """A piece of the tool call the model is writing (not message content)."""


def call_grammar(fmt: ToolFormat, specs: Sequence[ToolSpec], skip: str = "",
                 reply: bool = False) -> str:
    """GBNF for one call to one of ``specs`` in ``fmt``, minus the ``skip`` text already written;
    with ``reply`` (an envelope format), a reply object is the other choice.

    Each function's arguments rule comes from llama-cpp-python's JSON-Schema
    converter; one converter holds them all, so their rule names never clash.
    """
    from llama_cpp.llama_grammar import SchemaConverter

    conv = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    alternatives = []
    for i, spec in enumerate(specs):
        schema = conv.resolve_refs(copy.deepcopy(spec.parameters), f"tool{i}")
        args_rule = conv.visit(schema, f"tool{i}-args")
        head = fmt.head(spec.name)
        if not head.startswith(skip):
            raise ValueError(f"the call text {head!r} does not start with {skip!r}")
        head = head[len(skip):]
        alternatives.append(f"{gbnf_literal(head) if head else ''} {args_rule} "
                            f"{gbnf_literal(fmt.tail)}".strip())
    if reply:
        if not fmt.reply or skip:
            raise ValueError(f"the {fmt.name} format has no reply object to allow")
        alternatives.append(f'{gbnf_literal(fmt.reply)} {conv.visit({"type": "string"}, "reply")} '
                            f'{gbnf_literal("}")}')
    rules = conv.format_grammar()
    return "root ::= " + " | ".join(f"( {a} )" for a in alternatives) + "\n" + rules + "\n"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass
class ParsedCall:
    """A call read back from the model's text."""

    id: str
    name: str
    arguments: str


@dataclass
class CallEvent:
    """A step of a call for the stream: its start (id, name) or more argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class CallParser:
    """Reads the call text as it arrives: the name once the header is there, then the
    arguments, holding back what may still be the call's closing text."""

    def __init__(self, fmt: ToolFormat) -> None:
        self.fmt = fmt
        self.buffer = ""
        self.call: ParsedCall | None = None
        self.sent = 0  # characters of the arguments already given out
        self._header = re.compile(r"\s*" + re.escape(self.fmt.open)
                                  + r'\{"name": ("(?:[^"\\]|\\.)*"), "'
                                  + re.escape(self.fmt.args_key) + '": ')
        # the closing text plus the converter's trailing whitespace (at most 22 chars)
        self._hold = len(self.fmt.close) + 1 + 22

    def feed(self, text: str) -> list[CallEvent]:
        self.buffer += text
        events: list[CallEvent] = []
        if self.call is None:
            m = self._header.match(self.buffer)
            if m is None:
                return events
            self.call = ParsedCall(new_call_id(), json.loads(m.group(1)), "")
            self.buffer = self.buffer[m.end():]
            events.append(CallEvent(0, self.call.id, self.call.name, ""))
        ready = len(self.buffer) - self._hold
        if ready > self.sent:
            events.append(CallEvent(0, arguments=self.buffer[self.sent:ready]))
            self.sent = ready
        return events

    def finish(self, complete: bool) -> list[CallEvent]:
        """The rest of the arguments. ``complete``: the call ended as its format ends
        (else it was cut off at max_tokens and the arguments are kept as they are)."""
        if self.call is None:
            return []
        args = self.buffer
        if complete:
            args = args.rstrip().removesuffix(self.fmt.close.strip()).rstrip()
            args = args.removesuffix("}").rstrip()
        self.call.arguments = args
        rest = args[self.sent:]
        self.sent = len(args)
        return [CallEvent(0, arguments=rest)] if rest else []


class _Watch:
    """Splits free text into content and the start of a call (the format's trigger)."""

    def __init__(self, fmt: ToolFormat) -> None:
        self.fmt = fmt
        self.held = ""
        self.passing = False  # at_start formats: the answer began otherwise
        self.seen = ""  # all free text so far, trigger included once found
        self.found = False

    def push(self, piece: str) -> str:
        """Content that is safe to send; sets ``found`` when the trigger arrives."""
        self.seen += piece
        if self.passing:
            return piece
        self.held += piece
        trigger = self.fmt.trigger
        if self.fmt.at_start:
            start = self.held.lstrip()
            if start.startswith(trigger):
                self._found(len(self.held) - len(start) + len(trigger))
                return ""
            if trigger.startswith(start):
                return ""
            self.passing = True
            out, self.held = self.held, ""
            return out
        i = self.held.find(trigger)
        if i != -1:
            out = self.held[:i]
            self._found(i + len(trigger))
            return out
        keep = next((n for n in range(min(len(trigger) - 1, len(self.held)), 0, -1)
                     if trigger.startswith(self.held[-n:])), 0)
        out = self.held[:len(self.held) - keep]
        self.held = self.held[len(self.held) - keep:]
        return out

    def _found(self, end_in_held: int) -> None:
        # everything after the trigger in this piece is dropped: the grammar rewrites it
        extra = len(self.held) - end_in_held
        if extra:
            self.seen = self.seen[:-extra]
        self.found = True
        self.held = ""

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


class _Envelope:
    """Reads an answer in an envelope format as it arrives: a call's text as ``CallText``,
    a reply's text decoded from its JSON string.

    The grammar makes the answer one of the two objects, so the first characters
    decide which. A reply's string is decoded up to the last complete escape
    (a high surrogate waits for its low half); a lone surrogate, which JSON
    allows and UTF-8 cannot carry, becomes U+FFFD.
    """

    def __init__(self, fmt: ToolFormat) -> None:
        self.fmt = fmt
        self.raw = ""
        self.kind = ""  # "reply", "call", or "" until the start decides
        self.done = 0  # raw text up to here was given out
        self.closed = False  # the reply's closing quote arrived

    def push(self, piece: str) -> list[str]:
        self.raw += piece
        if not self.kind:
            opener = self.fmt.reply + '"'
            if self.raw.startswith(opener):
                self.kind, self.done = "reply", len(opener)
            elif self.raw.startswith(self.fmt.trigger):
                self.kind = "call"
                return [CallText(self.raw)]
            elif opener.startswith(self.raw) or self.fmt.trigger.startswith(self.raw):
                return []
            else:  # not from the grammar; kept as content rather than lost
                self.kind = "text"
                return [self.raw]
        elif self.kind != "reply":
            return [CallText(piece) if self.kind == "call" else piece]
        return self._decoded()

    def flush(self) -> list[str]:
        """What is left once the answer ended (an escape cut off at max_tokens is dropped)."""
        if not self.kind and self.raw:
            self.kind = "text"
            return [self.raw]
        return []

    def _decoded(self) -> list[str]:
        if self.closed:
            return []
        raw, i = self.raw, self.done
        while i < len(raw):
            c = raw[i]
            if c == '"':
                self.closed = True
                break
            if c != "\\":
                i += 1
                continue
            step = self._escape_length(raw, i)
            if step == 0:
                break
            i += step
        segment, self.done = raw[self.done:i], i
        if not segment:
            return []
        try:
            text = json.loads(f'"{segment}"', strict=False)
        except ValueError:  # not from the grammar (a bad escape): shown as written
            return [segment]
        return [text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")]

    @staticmethod
    def _escape_length(raw: str, i: int) -> int:
        """Characters of the escape at ``raw[i]``, or 0 while it is incomplete."""
        if i + 1 >= len(raw):
            return 0
        if raw[i + 1] != "u":
            return 2
        if i + 6 > len(raw):
            return 0
        if not 0xD800 <= _hex(raw[i + 2:i + 6]) < 0xDC00:
            return 6
        pair = raw[i + 6:i + 12]
        if not "\\u".startswith(pair[:2]):
            return 6  # a lone high surrogate
        if len(pair) < 6:
            return 0
        return 12 if 0xDC00 <= _hex(pair[2:]) < 0xE000 else 6


def _hex(digits: str) -> int:
    """A \\u escape's code unit; -1 for text that is not four hex digits."""
    try:
        return int(digits, 16) if len(digits) == 4 else -1
    except ValueError:
        return -1


class ToolRun:
    """One chat answer that may call a tool: an iterator of content and ``CallText``."""

    def __init__(self, backend: Backend, prompt: list[int], plan: ToolPlan,
                 fmt: ToolFormat, overrides: dict[str, Any], stop: tuple[str, ...],
                 tokenize: Callable[[str], list[int]]) -> None:
        self.backend = backend
        self.prompt = prompt
        self.plan = plan
        self.fmt = fmt
        self.overrides = overrides
        self.stop = stop
        self.tokenize = tokenize
        self.budget = backend.model.default_params.replace(**overrides).max_tokens
        self.usage = Usage(prompt_tokens=len(prompt))
        self._current: Any = None
        self._gen = self._run()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._count(self._current)
        self._gen.close()

    def _count(self, it: Any) -> Usage:
        use = self.backend.usage(it)
        self.usage.completion_tokens += use.completion_tokens
        self._current = None
        return use

    def _phase(self, tokens: list[int], grammar: str | None, overrides: dict[str, Any]
               ) -> Iterator[str]:
        self._current = self.backend.tokens(tokens, grammar, overrides)
        return self._current

    def _run(self) -> Iterator[str]:
        no_stop = {k: v for k, v in self.overrides.items() if k != "stop"}
        if self.plan.mode == "required":
            it = self._phase(self.prompt, call_grammar(self.fmt, self.plan.specs), no_stop)
            for piece in it:
                yield CallText(piece)
            use = self._count(it)
            self.usage.finish_reason = "tool_calls" if use.finish_reason == "stop" else "length"
            return
        if self.fmt.reply:
            yield from self._envelope(no_stop)
            return
        watch = _Watch(self.fmt)
        it = self._phase(self.prompt, None, {**self.overrides, "stop": self.stop})
        lstrip = True
        for piece in it:
            out = watch.push(piece)
            if lstrip and out:
                out = out.lstrip()
                lstrip = not out
            if out:
                yield out
            if watch.found:
                break
        if not watch.found:
            tail = watch.flush()
            if lstrip:
                tail = tail.lstrip()
            if tail:
                yield tail
            self.usage.finish_reason = self._count(it).finish_reason
            return
        it.close()
        left = self.budget - self._count(it).completion_tokens
        yield CallText(self.fmt.trigger)
        if left < 1:
            self.usage.finish_reason = "length"
            return
        tokens = self.prompt + self.tokenize(watch.seen)
        grammar = call_grammar(self.fmt, self.plan.specs, skip=self.fmt.trigger)
        it = self._phase(tokens, grammar, {**no_stop, "max_tokens": left})
        for piece in it:
            yield CallText(piece)
        use = self._count(it)
        self.usage.finish_reason = "tool_calls" if use.finish_reason == "stop" else "length"

    def _envelope(self, overrides: dict[str, Any]) -> Iterator[str]:
        """``auto`` in an envelope format: one answer under the call-or-reply grammar."""
        envelope = _Envelope(self.fmt)
        it = self._phase(self.prompt, call_grammar(self.fmt, self.plan.specs, reply=True),
                         overrides)
        for piece in it:
            yield from (p for p in envelope.push(piece) if p)
        yield from envelope.flush()
        use = self._count(it)
        called = envelope.kind == "call" and use.finish_reason == "stop"
        self.usage.finish_reason = "tool_calls" if called else use.finish_reason
