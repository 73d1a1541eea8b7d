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


def _strftime_now(fmt: str) -> str:
    import datetime

    return datetime.datetime.now().strftime(fmt)


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
