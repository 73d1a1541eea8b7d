"""Chat templates: the one place that turns a conversation into prompt text.

Each template is written once, as Jinja text in the Hugging Face
``tokenizer.chat_template`` convention (``messages``, ``bos_token``,
``eos_token``, ``add_generation_prompt``). ``lamina convert`` stores that same
text in the GGUF so other tools (llama.cpp, LM Studio...) format prompts like
lamina does, and :meth:`ChatTemplate.render` renders it, so the two can never
drift apart.

Rendering always happens in Jinja's ``ImmutableSandboxedEnvironment``: a GGUF
downloaded from the internet carries its own template text, and that text must
not be able to reach Python objects or run code.

A template may render the BOS/EOS markers itself (``bos_token``/``eos_token``,
bound to the model's own token texts by ``Model.bind_template``); the prompt is
then tokenized with special-token parsing and the vocabulary's BOS rule, which
never doubles a BOS the text already starts with (``Model._add_specials``).
"""

from __future__ import annotations

import json
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

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The full prompt text for ``messages`` (roles system/user/assistant)."""
        _check_messages(messages)
        compiled = _compile(self.jinja)
        try:
            text = compiled.render(
                messages=[{"role": m["role"], "content": m["content"]} for m in messages],
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

_ROLES = ("system", "user", "assistant")


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
                f"Message {i} has role '{m['role']}'.", hint="Use one of: system, user, assistant."
            )
        if not isinstance(m["content"], str):
            raise TemplateError(f"Message {i} content must be text, got {type(m['content']).__name__}.")
        if m["role"] == "system" and i != 0:
            raise TemplateError("A system message may only come first in the conversation.")


def _raise_exception(message: str) -> None:
    raise TemplateError(f"The chat template refused the conversation: {message}")


@lru_cache(maxsize=32)
def _compile(source: str) -> Any:
    """Compile Jinja text in a sandbox (templates from files are untrusted)."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
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
            name="llama2-zh",
            description="Llama2-Chinese (<s>Human: ...\\n</s><s>Assistant: )",
            body=_LLAMA2_ZH_JINJA,
            stop=("Human:",),
            sampling_defaults={"temperature": 0.3, "top_k": 50, "top_p": 0.95,
                               "repeat_penalty": 1.3},
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


def get_template(name: str) -> ChatTemplate:
    """The built-in template called ``name``; TemplateError names the valid ones."""
    try:
        return _TEMPLATES[name]
    except KeyError:
        raise TemplateError(
            f"Unknown chat template '{name}'.",
            hint=f"Choose one of: {', '.join(_TEMPLATES)} (see `lamina templates`).",
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


def detect_template(metadata: Mapping[str, str], *, bos_token: str = BOS,
                    eos_token: str = EOS) -> ChatTemplate:
    """Pick the template for a GGUF: lamina's recorded name, else the file's
    own Jinja text, else Chinese-Alpaca-2 (the most common Chinese-LLaMA format)."""
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
    return _TEMPLATES["alpaca2"]
