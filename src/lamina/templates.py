"""Chat templates: the one place that turns a conversation into prompt text.

Each template is written once, as Jinja text in the Hugging Face
``tokenizer.chat_template`` convention (``messages``, ``bos_token``,
``eos_token``, ``add_generation_prompt``). ``lamina convert`` stores that same
text in the GGUF so other tools (llama.cpp, LM Studio...) format prompts like
lamina does, and :meth:`ChatTemplate.render` renders it, so the two can never
drift apart.

Rendering always happens in Jinja's ``ImmutableSandboxedEnvironment``: a GGUF
downloaded from the internet carries its own template text, and that text must
not be able to reach Python objects or run code. The environment offers what
Hugging Face's renderer offers (``raise_exception``, a ``tojson`` that writes
plain JSON, ``strftime_now``), which model files' templates rely on.

Tool calls (OpenAI's ``tools``, assistant ``tool_calls``, ``role: tool``
messages): a template that knows them in one of the two formats lamina reads
back (:data:`TOOL_FORMATS`: Hermes/Qwen ``<tool_call>`` tags, Llama-3's bare
JSON with ``parameters``) renders them itself, from the GGUF's own Jinja with
``tools=``; every other template gets lamina's documented JSON format
(:func:`tools_as_text`, ``TOOL_FORMATS["json"]``): the tool list in the system
message, every answer one JSON object (a call or a reply), results as
``<tool_response>`` text in ordinary turns.

A template may render the BOS/EOS markers itself (``bos_token``/``eos_token``,
bound to the model's own token texts by ``Model.bind_template``); the prompt is
then tokenized with special-token parsing and the vocabulary's BOS rule, which
never doubles a BOS the text already starts with (``Model._add_specials``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lamina.errors import TemplateError

BOS = "<s>"
EOS = "</s>"

ALPACA_SYSTEM = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
ALPACA2_SYSTEM = "You are a helpful assistant. 你是一个乐于助人的助手。"
QWEN_SYSTEM = "You are a helpful assistant."
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
CHATGLM3_SYSTEM = (
    "You are ChatGLM3, a large language model trained by Zhipu.AI. "
    "Follow the user's instructions carefully. Respond using markdown."
)

# Jinja sources. Whitespace matters: every literal newline below is part of the
# prompt, so the templates are kept on one logical line with explicit "\n".
_ALPACA_JINJA = (
    "{{ bos_token }}"
    "{% set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system'"
    " else default_system %}"
    "{% if sys %}{{ sys + '\\n\\n' }}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}"
    "{{ '### Instruction:\\n\\n' + m['content'] + '\\n\\n### Response:\\n\\n' }}"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token + '\\n\\n' }}"
    "{% endif %}"
    "{% endfor %}"
)

_LLAMA2_JINJA = (
    "{% set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system'"
    " else default_system %}"
    "{% set ns = namespace(first=true) %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' }}"
    "{% if ns.first and sys %}{{ '<<SYS>>\\n' + sys + '\\n<</SYS>>\\n\\n' }}{% endif %}"
    "{% set ns.first = false %}"
    "{{ m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' ' + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)

_LLAMA2_ZH_JINJA = (
    "{% set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system'"
    " else default_system %}"
    "{% if sys %}{{ bos_token + 'System: ' + sys + '\\n' + eos_token }}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ bos_token + 'Human: ' + m['content'] + '\\n' + eos_token }}"
    "{% elif m['role'] == 'assistant' %}"
    "{{ bos_token + 'Assistant: ' + m['content'] + '\\n' + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ bos_token + 'Assistant: ' }}{% endif %}"
)

_CHATML_JINJA = (
    "{% set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system'"
    " else default_system %}"
    "{% if sys %}{{ '<|im_start|>system\\n' + sys + '<|im_end|>\\n' }}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] != 'system' %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Qwen's ChatML with its default system prompt, as Qwen1.5/Qwen2-Instruct ship it
# (and seed 002's "qwen": no BOS, no EOS after answers, <|im_end|> closes turns).
_QWEN_JINJA = (
    "{% set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system'"
    " else default_system %}"
    "{{ '<|im_start|>system\\n' + sys + '<|im_end|>\\n' }}"
    "{% for m in messages %}"
    "{% if m['role'] != 'system' %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Meta-Llama-3-Instruct: one BOS, role headers, contents trimmed, <|eot_id|> closes turns.
_LLAMA3_JINJA = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

# Seed 002's vicuna (FastChat v1.1): system, then "USER: q ASSISTANT: a</s>" turns.
_VICUNA_JINJA = (
    "{% set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system'"
    " else default_system %}"
    "{% set ns = namespace(answered=false) %}"
    "{{ bos_token }}{% if sys %}{{ sys + ' ' }}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}"
    "{{ (bos_token if ns.answered else '') + 'USER: ' + m['content'] + ' ASSISTANT:' }}"
    "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + eos_token }}"
    "{% set ns.answered = true %}"
    "{% endif %}"
    "{% endfor %}"
)


def _turn_tokens_jinja(user: str, assistant: str) -> str:
    """Baichuan's format: the system text, then user/assistant marker tokens around each
    question; answers end without EOS (the model emits it), and no BOS is rendered."""
    return (
        "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}"
        "{% endif %}"
        "{% for m in messages %}"
        "{% if m['role'] == 'user' %}{{ '" + user + "' + m['content'] + '" + assistant + "' }}"
        "{% elif m['role'] == 'assistant' %}{{ m['content'] }}"
        "{% endif %}"
        "{% endfor %}"
    )


# Seed 002's chatglm3: [gMASK]sop, a system turn, <|user|>/<|assistant|> markers.
_CHATGLM3_JINJA = (
    "{% set sys = messages[0]['content'] if messages and messages[0]['role'] == 'system'"
    " else default_system %}"
    "{{ '[gMASK]sop<|system|>\\n' + sys }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ '<|user|>\\n' + m['content'] + '<|assistant|>' }}"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}"
    "{% endif %}"
    "{% endfor %}"
)

# No bos_token: whether a raw prompt starts with BOS is the vocabulary's call.
_RAW_JINJA = (
    "{% for m in messages %}{{ m['content'] }}{% if not loop.last %}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class ChatTemplate:
    """A named prompt format plus the generation settings that go with it.

    ``stop`` holds strings that end an answer besides the EOS token (formats
    whose turn marker is plain text). ``sampling_defaults`` are SamplingParams
    field overrides recommended for models trained on this format.
    """

    name: str
    description: str
    jinja: str
    default_system: str | None = None
    stop: tuple[str, ...] = ()
    sampling_defaults: Mapping[str, float | int] = field(default_factory=dict)
    bos_token: str = BOS
    eos_token: str = EOS

    @property
    def native_tool_format(self) -> ToolFormat | None:
        """The tool-call format this template renders itself, or None (lamina's text format).

        Recognised from the Jinja text: a template that takes ``tools`` and
        writes ``<tool_call>`` tags (Qwen 2.5, Hermes, SmolLM3...) or Llama-3's
        ``"parameters"`` JSON under ``<|start_header_id|>``.
        """
        if not re.search(r"\btools\b", self.jinja):
            return None
        if "<tool_call>" in self.jinja:
            return TOOL_FORMATS["hermes"]
        if "<|start_header_id|>" in self.jinja and "parameters" in self.jinja:
            return TOOL_FORMATS["llama3"]
        return None

    @property
    def tool_format(self) -> ToolFormat:
        """How this model is asked to write a tool call (and how lamina reads it back)."""
        return self.native_tool_format or TOOL_FORMATS["json"]

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True,
               tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        """The full prompt text for ``messages`` (roles system/user/assistant/tool).

        ``tools`` are OpenAI-style tool definitions (``{"type": "function",
        "function": {"name", "description", "parameters"}}``) the model may call.
        """
        _check_messages(messages)
        if self.native_tool_format is None:
            messages, tools = tools_as_text(messages, tools), None
        compiled = _compile(self.jinja)
        try:
            text = compiled.render(
                messages=[_for_template(m) for m in messages],
                tools=list(tools) if tools else None,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError:
            raise
        except Exception as exc:  # SecurityError, UndefinedError, raise_exception()...
            raise TemplateError(
                f"The chat template '{self.name}' failed to render: {exc}",
                hint="Choose a built-in template with --template (see `lamina templates`).",
            ) from exc
        return text

    def example(self) -> str:
        """A short rendered conversation, for `lamina templates` and the docs."""
        return self.render(EXAMPLE_MESSAGES)


EXAMPLE_MESSAGES: list[dict[str, str]] = [
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！有什么可以帮你？"},
    {"role": "user", "content": "介绍一下北京"},
]

_ROLES = ("system", "user", "assistant", "tool")


def _check_messages(messages: Sequence[Any]) -> None:
    if not isinstance(messages, (list, tuple)):
        raise TemplateError("Messages must be a list of {'role': ..., 'content': ...} objects.")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise TemplateError(
                f"Message {i} must be an object with 'role' and 'content', got {m!r:.80}."
            )
        if m["role"] not in _ROLES:
            raise TemplateError(
                f"Message {i} has role '{m['role']}'.",
                hint="Use one of: system, user, assistant, tool.",
            )
        if not isinstance(m["content"], str):
            raise TemplateError(f"Message {i} content must be text, got {type(m['content']).__name__}.")
        if m["role"] == "system" and i != 0:
            raise TemplateError("A system message may only come first in the conversation.")
        calls = m.get("tool_calls")
        if calls is not None and (m["role"] != "assistant" or not isinstance(calls, list) or not all(
                isinstance(c, Mapping) and isinstance(c.get("function"), Mapping)
                and isinstance(c["function"].get("name"), str) for c in calls)):
            raise TemplateError(f"Message {i} has tool_calls that are not a list of "
                                "{'function': {'name': ..., 'arguments': ...}} on an assistant turn.")


@dataclass(frozen=True)
class ToolFormat:
    """How a model writes one tool call, so it can be asked for, constrained and read back.

    A call is ``open + '{"name": "NAME", "ARGS_KEY": ARGUMENTS}' + close``.
    ``trigger`` is the text that shows an answer has begun a call: anywhere in
    the answer, or only at its very start when ``at_start``.

    ``reply`` is set for an envelope format (``json``): every answer is one JSON
    object, either a call or ``reply + <JSON string> + "}"``, so an ``auto``
    answer is generated under the grammar from its first token and the model's
    choice between calling and replying is the choice of the object's key. Why:
    a small model told "write <tool_call> to call" almost never starts a call
    unprompted (SmolLM2-135M: never, in the tests' requests), but picks the
    ``tool_call`` key for a request a tool answers.
    """

    name: str
    open: str
    close: str
    args_key: str
    trigger: str
    at_start: bool
    reply: str = ""

    def head(self, name: str) -> str:
        """A call's text up to its arguments."""
        return f'{self.open}{{"name": {json.dumps(name, ensure_ascii=False)}, "{self.args_key}": '

    @property
    def tail(self) -> str:
        """A call's text after its arguments."""
        return "}" + self.close

    def call_text(self, name: str, arguments: str) -> str:
        """One call as the model writes it (``arguments``: JSON text)."""
        return self.head(name) + arguments + self.tail

    def reply_text(self, content: str) -> str:
        """A reply as an envelope format's model writes it (the text as it is otherwise)."""
        if not self.reply:
            return content
        return self.reply + json.dumps(content, ensure_ascii=False) + "}"


TOOL_FORMATS: dict[str, ToolFormat] = {
    "hermes": ToolFormat("hermes", "<tool_call>\n", "\n</tool_call>", "arguments",
                         trigger="<tool_call>", at_start=False),
    "llama3": ToolFormat("llama3", "", "", "parameters", trigger="{", at_start=True),
    "json": ToolFormat("json", '{"tool_call": ', "}", "arguments", trigger='{"tool_call": ',
                       at_start=True, reply='{"response": '),
}

#: lamina's format for templates that do not know tools (documented in docs/serve.md).
TOOLS_SYSTEM_PROMPT = (
    "You can call these tools:\n{tools}\n\nRespond in JSON: either "
    '{{"tool_call": {{"name": ..., "arguments": {{...}}}}}} to call a tool, or '
    '{{"response": "..."}} to answer the user directly.'
)


def _arguments_value(arguments: Any) -> Any:
    """OpenAI sends arguments as JSON text; templates want the JSON value (text kept
    as it is when it does not parse)."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return {} if arguments is None else arguments


def _arguments_text(arguments: Any) -> str:
    """Arguments as JSON text for lamina's format, so the call object stays valid JSON
    (text that is not JSON becomes a JSON string)."""
    return json.dumps(_arguments_value(arguments), ensure_ascii=False)


def tools_as_text(messages: Sequence[Mapping[str, Any]],
                  tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The conversation with tools, calls and results written as plain turns.

    For templates that know only system/user/assistant: the tool list joins
    the system message (first, created if needed); an assistant turn is
    written as the JSON objects the model is asked for (its content as a
    ``response`` when the request lists tools, each call as a ``tool_call``,
    one per line); consecutive ``tool`` results become one user turn of
    ``<tool_response>`` blocks.
    """
    fmt = TOOL_FORMATS["json"]
    out: list[dict[str, Any]] = []
    if tools:
        listing = "\n".join(json.dumps(t.get("function", t), ensure_ascii=False) for t in tools)
        prompt = TOOLS_SYSTEM_PROMPT.format(tools=listing)
        if messages and messages[0]["role"] == "system":
            head, messages = messages[0]["content"], messages[1:]
            prompt = f"{head}\n\n{prompt}" if head else prompt
        out.append({"role": "system", "content": prompt})
    for m in messages:
        if m["role"] == "tool":
            block = f"<tool_response>\n{m['content']}\n</tool_response>"
            if out and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        elif m.get("tool_calls"):
            calls = [fmt.call_text(c["function"]["name"],
                                   _arguments_text(c["function"].get("arguments")))
                     for c in m["tool_calls"]]
            said = m["content"] and (fmt.reply_text(m["content"]) if tools else m["content"])
            text = "\n".join(([said] if said else []) + calls)
            out.append({"role": "assistant", "content": text})
        elif m["role"] == "assistant" and tools:
            out.append({"role": "assistant", "content": fmt.reply_text(m["content"])})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    for m in out:
        m.pop("_tool_results", None)
    return out


def _for_template(m: Mapping[str, Any]) -> dict[str, Any]:
    """What a Jinja template sees of a message: Hugging Face's message shape.

    ``tool_calls`` only when there are some (Llama-3's template tests for the
    key), with ``arguments`` as the JSON value rather than text, as HF
    templates expect; ``tool_call_id``/``name`` on tool results.
    """
    out: dict[str, Any] = {"role": m["role"], "content": m["content"]}
    if m.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c.get("id"), "type": "function",
             "function": {"name": c["function"]["name"],
                          "arguments": _arguments_value(c["function"].get("arguments"))}}
            for c in m["tool_calls"]]
    for key in ("tool_call_id", "name"):
        if m.get(key) is not None:
            out[key] = m[key]
    return out


def _raise_exception(message: str) -> None:
    raise TemplateError(f"The chat template refused the conversation: {message}")


def _tojson(value: Any, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    """Hugging Face's ``tojson``: plain JSON (Jinja's own escapes <, > and & for HTML)."""
    return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys,
                      ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    """Today's date for templates that print it (Llama-3's), as HF's renderer offers."""
    import datetime

    return datetime.datetime.now().strftime(str(fmt))


@lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    """Compile Jinja text in a sandbox (templates from files are untrusted)."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # The settings transformers' apply_chat_template renders with, so a checkpoint's
    # own template (Llama-3.1's uses strftime_now, some use {% break %}) works here too.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.filters["tojson"] = _tojson
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"The chat template is not valid Jinja: {exc.message} (line {exc.lineno}).",
            hint="Choose a built-in template with --template (see `lamina templates`).",
        ) from exc


def _builtin(name: str, description: str, body: str, default_system: str | None = None,
             **kw: Any) -> ChatTemplate:
    """A built-in template whose Jinja text is self-contained (other tools that
    read it from the GGUF do not know lamina's default system prompts)."""
    head = "{% set default_system = " + (json.dumps(default_system, ensure_ascii=False)
                                         if default_system else "none") + " %}"
    return ChatTemplate(name=name, description=description, jinja=head + body,
                        default_system=default_system, **kw)


_TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in (
        _builtin(
            name="alpaca",
            description="Chinese-Alpaca 1 (Stanford-Alpaca instruction/response prompt)",
            body=_ALPACA_JINJA,
            default_system=ALPACA_SYSTEM,
            stop=("### Instruction:",),
        ),
        _builtin(
            name="alpaca2",
            description="Chinese-Alpaca-2 (Llama-2 [INST] format, bilingual system prompt)",
            body=_LLAMA2_JINJA,
            default_system=ALPACA2_SYSTEM,
        ),
        _builtin(
            name="llama2",
            description="Meta Llama-2-chat [INST] <<SYS>> format",
            body=_LLAMA2_JINJA,
        ),
        _builtin(
            name="llama2_zh",
            description="Chinese-Alpaca-2 / OneKE (seed 002's llama2_zh; the alpaca2 text)",
            body=_LLAMA2_JINJA,
            default_system=ALPACA2_SYSTEM,
        ),
        _builtin(
            name="flagalpha",
            description="Llama2-Chinese by FlagAlpha (<s>Human: ...\\n</s><s>Assistant: )",
            body=_LLAMA2_ZH_JINJA,
            stop=("Human:",),
            sampling_defaults={"temperature": 0.3, "top_k": 50, "top_p": 0.95,
                               "repeat_penalty": 1.3},
        ),
        _builtin(
            name="llama3",
            description="Meta Llama-3-Instruct (<|start_header_id|>role<|end_header_id|>)",
            body=_LLAMA3_JINJA,
            stop=("<|eot_id|>",),
        ),
        _builtin(
            name="qwen",
            description="Qwen1.5/Qwen2 ChatML with Qwen's default system prompt",
            body=_QWEN_JINJA,
            default_system=QWEN_SYSTEM,
            stop=("<|im_end|>", "<|im_start|>"),
        ),
        _builtin(
            name="vicuna",
            description="Vicuna v1.1 (USER: ... ASSISTANT:), seed 002's vicuna",
            body=_VICUNA_JINJA,
            default_system=VICUNA_SYSTEM,
            stop=("USER:",),
        ),
        _builtin(
            name="baichuan",
            description="Baichuan-13B-Chat (<reserved_102> question <reserved_103>)",
            body=_turn_tokens_jinja("<reserved_102>", "<reserved_103>"),
            stop=("<reserved_102>",),
        ),
        _builtin(
            name="baichuan2",
            description="Baichuan2-Chat (<reserved_106> question <reserved_107>)",
            body=_turn_tokens_jinja("<reserved_106>", "<reserved_107>"),
            stop=("<reserved_106>",),
        ),
        _builtin(
            name="chatglm3",
            description="ChatGLM3 ([gMASK]sop<|system|> ... <|user|> ... <|assistant|>)",
            body=_CHATGLM3_JINJA,
            default_system=CHATGLM3_SYSTEM,
            stop=("<|user|>", "<|observation|>"),
        ),
        _builtin(
            name="chatml",
            description="ChatML (<|im_start|>role ... <|im_end|>)",
            body=_CHATML_JINJA,
            stop=("<|im_end|>", "<|im_start|>"),
        ),
        _builtin(
            name="raw",
            description="No formatting: the messages' text joined by newlines",
            body=_RAW_JINJA,
        ),
    )
}


#: Old names that now mean something else (or nothing): a hint, never a silent alias.
_RENAMED = {"llama2-zh": "flagalpha"}


def get_template(name: str) -> ChatTemplate:
    """The built-in template called ``name``; TemplateError names the valid ones."""
    try:
        return _TEMPLATES[name]
    except KeyError:
        renamed = (f"'{name}' (FlagAlpha's Human/Assistant format) is now called "
                   f"'{_RENAMED[name]}'; seed 002's Chinese-Alpaca-2 format is 'llama2_zh'. "
                   if name in _RENAMED else "")
        raise TemplateError(
            f"Unknown chat template '{name}'.",
            hint=f"{renamed}Choose one of: {', '.join(_TEMPLATES)} (see `lamina templates`).",
        ) from None


def list_templates() -> list[ChatTemplate]:
    """All built-in templates, in a stable order."""
    return list(_TEMPLATES.values())


def from_jinja(source: str, *, bos_token: str = BOS, eos_token: str = EOS,
               name: str = "gguf") -> ChatTemplate:
    """A template from a model file's own ``tokenizer.chat_template`` text.

    Compiled now, so a broken template fails at load time with a clear message.
    """
    _compile(source)
    return ChatTemplate(name=name, description="the model file's own Jinja chat template",
                        jinja=source, stop=(), bos_token=bos_token, eos_token=eos_token)


#: Template for a GGUF that names none and carries no Jinja text, by what the file is:
#: (general.architecture, tokenizer.ggml.model) -> template name.
FAMILY_DEFAULTS = {("qwen2", "gpt2"): "qwen", ("llama", "gpt2"): "llama3",
                   ("baichuan", "llama"): "baichuan2"}


def detect_template(metadata: Mapping[str, str], *, bos_token: str = BOS,
                    eos_token: str = EOS) -> ChatTemplate:
    """Pick the template for a GGUF: lamina's recorded name, else the file's own
    Jinja text, else its family's format (Qwen2 -> qwen, a Llama with a BPE
    vocabulary -> llama3, Baichuan -> baichuan2), else Chinese-Alpaca-2 (the most common Chinese-LLaMA
    format)."""
    from lamina import gguf_io

    name = metadata.get(gguf_io.TEMPLATE_NAME)
    if name and name in _TEMPLATES:
        return _TEMPLATES[name]
    jinja = metadata.get(gguf_io.CHAT_TEMPLATE_JINJA)
    if jinja:
        for builtin in _TEMPLATES.values():
            if builtin.jinja == jinja:
                return builtin
        return from_jinja(jinja, bos_token=bos_token, eos_token=eos_token)
    family = (metadata.get("general.architecture"), metadata.get("tokenizer.ggml.model"))
    return _TEMPLATES[FAMILY_DEFAULTS.get(family, "alpaca2")]
