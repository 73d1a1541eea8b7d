"""Templates against Hugging Face's own chat-template renderer, and the rest of the API.

transformers renders ``tokenizer.chat_template`` texts (the convention lamina writes
into GGUF files and reads back from them) with ``render_jinja_template``; lamina
must render every built-in and every file template the same way. Written to kill
the mutants of ``benchmarks/mutation.py`` that the exact-prompt tests let through.
"""

from __future__ import annotations

import dataclasses

import pytest

from lamina.errors import TemplateError
from lamina.templates import detect_template, from_jinja, get_template, list_templates

TURNS = [
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！"},
    {"role": "user", "content": "介绍一下北京"},
]

#: A file template written the way Hub templates are: one tag per line, indented (it
#: renders right only with trim_blocks and lstrip_blocks, as transformers sets them).
HUB_STYLE = """{{ bos_token }}{% for message in messages %}
    {% if message['role'] == 'system' %}
<<{{ message['content'] }}>>
    {% elif message['role'] == 'user' %}
User: {{ message['content'] }}
    {% else %}
Bot: {{ message['content'] }}{{ eos_token }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
Bot:{% endif %}"""


def hf_render(source: str, messages: list[dict[str, str]], add_generation_prompt: bool = True,
              bos: str = "<s>", eos: str = "</s>") -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=source,
                                        add_generation_prompt=add_generation_prompt,
                                        bos_token=bos, eos_token=eos)
    return rendered[0]


@pytest.mark.parametrize("name", [t.name for t in list_templates()])
@pytest.mark.parametrize("gen", [True, False])
def test_builtins_render_as_transformers_renders_their_jinja(name, gen):
    t = get_template(name)
    for messages in (TURNS, [{"role": "system", "content": "SYS"}, *TURNS], TURNS[:1]):
        assert t.render(messages, add_generation_prompt=gen) == hf_render(t.jinja, messages, gen)


def test_file_templates_render_as_transformers_renders_them():
    t = from_jinja(HUB_STYLE, bos_token="<B>", eos_token="<E>")
    messages = [{"role": "system", "content": "S"}, *TURNS]
    expected = hf_render(HUB_STYLE, messages, bos="<B>", eos="<E>")
    assert expected == "<B><<S>>\nUser: 你好\nBot: 你好！<E>\nUser: 介绍一下北京\nBot:"
    assert t.render(messages) == expected
    assert (t.name, t.stop, t.bos_token, t.eos_token) == ("gguf", (), "<B>", "<E>")
    assert from_jinja(HUB_STYLE).render(TURNS[:1], add_generation_prompt=False) == \
        "<s>User: 你好\n"


def test_raise_exception_reports_the_templates_own_message():
    """Hub templates refuse conversations with ``raise_exception(...)``."""
    src = ("{% if messages[0]['role'] == 'system' %}"
           "{{ raise_exception('System role not supported') }}{% endif %}ok")
    t = from_jinja(src)
    assert t.render(TURNS) == "ok"
    with pytest.raises(TemplateError, match="refused the conversation: System role not supported"):
        t.render([{"role": "system", "content": "x"}, *TURNS])
    with pytest.raises(TemplateError, match="failed to render: .*undefined"):
        from_jinja("{{ nope() }}").render(TURNS)


@pytest.mark.parametrize("name", [t.name for t in list_templates()])
def test_builtin_jinja_needs_no_undefined_names(name):
    """Tools that read the GGUF may render strictly: every name the text uses is bound."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        undefined=StrictUndefined)
    t = get_template(name)
    for gen in (True, False):
        assert env.from_string(t.jinja).render(messages=TURNS, add_generation_prompt=gen,
                                               bos_token="<s>", eos_token="</s>") == \
            t.render(TURNS, add_generation_prompt=gen)


def test_system_prompts_are_the_published_ones_verbatim():
    """Chinese-Alpaca-2's default system prompt (its project's chat template) and
    Stanford Alpaca's preamble, readable as such in the Jinja text stored in a GGUF."""
    alpaca2 = "You are a helpful assistant. 你是一个乐于助人的助手。"
    assert get_template("alpaca2").render(TURNS[:1]) == \
        f"<s>[INST] <<SYS>>\n{alpaca2}\n<</SYS>>\n\n你好 [/INST]"
    assert alpaca2 in get_template("alpaca2").jinja
    preamble = ("Below is an instruction that describes a task. Write a response that "
                "appropriately completes the request.")
    assert preamble in get_template("alpaca").jinja
    assert get_template("llama2").default_system is None


#: Stops that mark a turn a plain user/assistant conversation never has: ChatGLM3's
#: tool-result turn begins with <|observation|>, where the model must stop too.
ROLE_MARKERS_NOT_IN_PLAIN_TURNS = {("chatglm3", "<|observation|>")}


@pytest.mark.parametrize("name", [t.name for t in list_templates()])
def test_stop_strings_are_markers_the_template_writes(name):
    t = get_template(name)
    text = t.render(TURNS)
    for stop in t.stop:
        if (name, stop) in ROLE_MARKERS_NOT_IN_PLAIN_TURNS:
            continue
        assert stop in text, (name, stop)
    assert get_template("chatml").stop and get_template("alpaca").stop
    assert get_template("flagalpha").stop


@pytest.mark.parametrize("name", [t.name for t in list_templates()])
def test_example_renders_a_three_turn_conversation(name):
    """``lamina templates NAME`` prints this."""
    t = get_template(name)
    text = t.example()
    assert text.count("你好") >= 2 and "介绍一下北京" in text


def test_builtins_are_shared_and_immutable():
    t = get_template("alpaca2")
    assert get_template("alpaca2") is t
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.bos_token = "<bos>"  # one model binding its tokens must not change another's
    assert t.description and all(x.description for x in list_templates())


@pytest.mark.parametrize("messages, words", [
    (None, "must be a list"), (42, "must be a list"),
    ([{"role": "user", "content": ["x"]}], "content must be text"),
    ([{"role": "user"}], "Message 0 must be an object"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "only come first"),
])
def test_bad_messages_name_the_problem(messages, words):
    with pytest.raises(TemplateError, match=words):
        get_template("chatml").render(messages)
    get_template("chatml").render([{"role": "system", "content": "s"}, *TURNS])


def test_detect_skips_unknown_names():
    """A name another lamina version recorded, which this one lacks, is not an error."""
    chatml = get_template("chatml")
    assert detect_template({"lamina.chat_template.name": "no-such-template"}).name == "alpaca2"
    assert detect_template({"lamina.chat_template.name": "no-such-template",
                            "tokenizer.chat_template": chatml.jinja}) is chatml
    assert detect_template({"lamina.chat_template.name": "",
                            "tokenizer.chat_template": ""}).name == "alpaca2"
    own = detect_template({"tokenizer.chat_template": HUB_STYLE}, bos_token="<B>", eos_token="<E>")
    assert (own.name, own.bos_token, own.eos_token) == ("gguf", "<B>", "<E>")
