"""Templates against Hugging Face's own chat-template renderer, and the rest of the API.

transformers renders ``tokenizer.chat_template`` texts (the convention lamina writes
into GGUF files and reads back from them) with ``render_jinja_template``; lamina
must render every built-in and every file template the same way. Written to kill
the mutants of ``benchmarks/mutation.py`` that the exact-prompt tests let through.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lamina.errors import TemplateError
from lamina.templates import (
    TOOL_FORMATS,
    detect_template,
    from_jinja,
    get_template,
    list_templates,
    tools_as_text,
)
from tests.runtime.test_templates import TWO_TURNS as TURNS

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


# ---- tools, tool calls and tool results

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
#: Real models' templates that know tools (tests/fixtures/templates/README.md).
QWEN25 = (FIXTURES / "qwen2.5-instruct.jinja").read_text(encoding="utf-8")
LLAMA32 = (FIXTURES / "llama-3.2-instruct.jinja").read_text(encoding="utf-8")
NATIVE = {"hermes": QWEN25, "llama3": LLAMA32}

#: Keys out of sorted order, text for HTML escaping and non-ASCII text: what a ``tojson``
#: other than Hugging Face's (sorted, escaped, ASCII-only) would write differently.
WEATHER = {"type": "object", "required": ["city"],
           "properties": {"city": {"type": "string", "enum": ["Paris", "杭州"]},
                          "days": {"type": "integer", "minimum": 1, "maximum": 7}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather",
                                           "description": "Weather & rain <now>",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "parameters": {
             "type": "object", "properties": {}}}}]


def call(name: str, arguments, call_id: str = "call_1") -> dict:
    """A tool call in the shape OpenAI clients send back (``arguments``: JSON text) and
    Hugging Face templates take (``arguments``: the JSON value)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def hf_tools_render(source: str, messages: list[dict], tools=None, gen: bool = True,
                    bos: str = "<|begin_of_text|>", eos: str = "<|eot_id|>") -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], tools=tools,
                                        chat_template=source, add_generation_prompt=gen,
                                        bos_token=bos, eos_token=eos)
    return rendered[0]


def conversations(fmt: str) -> list[tuple[list[dict], list[dict], list | None]]:
    """(OpenAI-shaped messages, the same in Hugging Face's shape, tools): calls with
    arguments as JSON text, as a value, missing (null: an empty object) and as text
    that is not JSON (kept as text); results of one and of several calls."""
    sys_ = {"role": "system", "content": "You help with travel."}
    user = {"role": "user", "content": "Weather in 杭州?"}
    result = {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
              "content": '{"temp_c": 21}'}
    out = []
    for ours, theirs in (('{"city": "杭州", "days": 3}', {"city": "杭州", "days": 3}),
                         ({"city": "Paris"}, {"city": "Paris"}), (None, {}),
                         ("not json", "not json")):
        if fmt == "hermes":  # Qwen 2.5: text before the calls, several calls, results merged
            a = [{"role": "assistant", "content": "Let me look.",
                  "tool_calls": [call("get_weather", ours),
                                 call("get_time", "{}", "call_2")]},
                 result, {**result, "tool_call_id": "call_2", "content": "12:00"}]
            b = [{"role": "assistant", "content": "Let me look.",
                  "tool_calls": [call("get_weather", theirs),
                                 call("get_time", {}, "call_2")]},
                 result, {**result, "tool_call_id": "call_2", "content": "12:00"}]
            out.append(([sys_, user, *a], [sys_, user, *b], TOOLS))
        else:  # Llama 3.2: one call per turn; tools in the first user turn
            a = [{"role": "assistant", "content": "", "tool_calls": [call("get_weather", ours)]},
                 result]
            b = [{"role": "assistant", "content": "", "tool_calls": [call("get_weather", theirs)]},
                 result]
            out.append(([sys_, user, *a], [sys_, user, *b], TOOLS))
            out.append(([user, *a, {"role": "user", "content": "Thanks"}],
                        [user, *b, {"role": "user", "content": "Thanks"}], None))
    return out


@pytest.mark.parametrize("fmt", ["hermes", "llama3"])
def test_templates_that_know_tools_render_them_as_transformers(fmt):
    """Tools (through HF's ``tojson``), calls (arguments as the JSON value), results and
    Llama 3.2's date (``strftime_now``): all as transformers renders the same template."""
    t = from_jinja(NATIVE[fmt], bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    assert t.native_tool_format is TOOL_FORMATS[fmt] and t.tool_format is TOOL_FORMATS[fmt]
    for ours, theirs, tools in conversations(fmt):
        for gen in (True, False):
            assert t.render(ours, add_generation_prompt=gen, tools=tools) == \
                hf_tools_render(NATIVE[fmt], theirs, tools, gen)
    if fmt == "llama3":  # today's date, as transformers' strftime_now gives it
        import datetime

        assert f"Today Date: {datetime.date.today():%d %b %Y}" in t.render(TURNS)


def test_the_message_fields_a_template_sees_are_hugging_faces():
    """``tool_calls`` (a key only when there are calls: Llama 3.2 tests for it), each
    call's id and type, and a result's ``tool_call_id`` and ``name``."""
    src = ("{# knows tools: <tool_call> #}{% for m in messages %}{{ m.role }}|"
           "{{ 'tool_calls' in m }}|{{ m.tool_call_id }}|{{ m.name }}|"
           "{% for c in m.tool_calls or [] %}{{ c.id }},{{ c.type }},{{ c.function.name }},"
           "{{ c.function.arguments | tojson }};{% endfor %}{% endfor %}")
    t = from_jinja(src)
    assert t.native_tool_format is TOOL_FORMATS["hermes"]
    ours = [{"role": "user", "content": "q", "tool_calls": None},
            {"role": "assistant", "content": "", "tool_calls": [call("f", '{"a": 1}', "c1")]},
            {"role": "tool", "content": "r", "tool_call_id": "c1", "name": "f"},
            {"role": "assistant", "content": "ok", "tool_calls": []}]
    theirs = [{"role": "user", "content": "q"},
              {"role": "assistant", "content": "", "tool_calls": [call("f", {"a": 1}, "c1")]},
              {"role": "tool", "content": "r", "tool_call_id": "c1", "name": "f"},
              {"role": "assistant", "content": "ok"}]
    expected = hf_tools_render(src, theirs)
    assert expected == ('user|False|||assistant|True|||c1,function,f,{"a": 1};tool|False|c1|f|'
                        "assistant|False|||")
    assert t.render(ours) == expected


@pytest.mark.parametrize("fmt", ["hermes", "llama3"])
def test_tool_formats_write_calls_as_the_models_own_templates_do(fmt):
    """A call's text is what the format's reference template writes for it; the trigger
    starts it; ``at_start``: Llama 3.2 writes the call alone, Qwen 2.5 after the text."""
    f = TOOL_FORMATS[fmt]
    args = {"city": "杭州", "days": 3}
    written = f.call_text("get_weather", json.dumps(args, ensure_ascii=False))
    assert written.startswith(f.head("get_weather")) and written.endswith(f.tail)
    assert written.startswith(f.trigger)
    user = {"role": "user", "content": "q"}
    turn = {"role": "assistant", "content": "Let me look.",
            "tool_calls": [call("get_weather", args)]}
    text = hf_tools_render(NATIVE[fmt], [user, turn], gen=False)
    header = {"hermes": "<|im_start|>assistant\n", "llama3": "assistant<|end_header_id|>\n\n"}
    end = {"hermes": "<|im_end|>", "llama3": "<|eot_id|>"}
    answer = text.split(header[fmt])[-1].split(end[fmt])[0]  # what the model wrote
    assert answer.endswith(written)
    assert answer.startswith(f.trigger) == f.at_start
    assert {k: v.name for k, v in TOOL_FORMATS.items()} == {"hermes": "hermes", "llama3": "llama3",
                                                            "json": "json"}
    assert not f.reply and f.reply_text("as it is") == "as it is"  # only json has an envelope
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.trigger = "x"  # shared by every model and request


def test_template_detection_of_tool_formats():
    """A template is taken to know tools only when it uses ``tools`` and writes one of
    the two call formats lamina reads back."""
    assert all(t.native_tool_format is None and t.tool_format is TOOL_FORMATS["json"]
               for t in list_templates())
    for src, fmt in [("{{ tools }}<tool_call>", "hermes"),
                     ("{{ tools_json }}<tool_call>", None),  # a word starting with 'tools'
                     ("{{ x }}<tool_call>", None),
                     ("{{ tools }}<|start_header_id|>parameters", "llama3"),
                     ("{{ tools }}<|start_header_id|>", None),
                     ("{{ tools }}parameters", None)]:
        t = from_jinja(src)
        assert t.native_tool_format is (TOOL_FORMATS[fmt] if fmt else None), src
        assert t.tool_format is TOOL_FORMATS[fmt or "json"]


def test_jsonformat_objects_parse_back_to_the_call_and_the_reply():
    """lamina's JSON format: a call is ``{"tool_call": {"name", "arguments"}}`` and a reply
    ``{"response": text}``; each parses back (json.loads, the reference) to exactly what
    was written, for non-ASCII names, quotes, newlines and arguments of every shape."""
    f = TOOL_FORMATS["json"]
    assert (f.trigger, f.at_start) == ('{"tool_call": ', True)
    for name, args in [("get_weather", {"city": "杭州", "days": 3}), ("北京时间", {}),
                       ("f", {"a": [1, {"b": None}], "q": 'say "hi"\n'})]:
        written = f.call_text(name, json.dumps(args, ensure_ascii=False))
        assert written.startswith(f.trigger) and written.startswith(f.head(name))
        assert json.loads(written) == {"tool_call": {"name": name, "arguments": args}}
        assert f'"name": "{name}"' in written  # written as it is, not \\u-escaped
    for text in ["It is 21 °C.", 'He said "no".\nThen\tleft \\ ', "", "{not json}"]:
        written = f.reply_text(text)
        assert written.startswith(f.reply) and json.loads(written) == {"response": text}


def test_jsonformat_writes_turns_as_objects():
    """An earlier assistant turn is written as the objects the model is asked for: its
    content as a reply (when the request lists tools), then one call object per line,
    arguments as JSON (null: an empty object; text that is not JSON as a JSON string, so
    the object still parses);
    results stay tagged user turns."""
    chatml = get_template("chatml")
    for ours, _theirs, tools in conversations("hermes"):
        text = chatml.render(ours, add_generation_prompt=False, tools=tools)
        turn = text.split("<|im_start|>assistant\n", 1)[1].split("<|im_end|>", 1)[0]
        first, *calls = [json.loads(line) for line in turn.split("\n")]
        assert first == {"response": "Let me look."}
        args = ours[2]["tool_calls"][0]["function"]["arguments"]
        expected = (json.loads(args) if isinstance(args, str) and args != "not json"
                    else args if args is not None else {})
        assert calls == [{"tool_call": {"name": "get_weather", "arguments": expected}},
                         {"tool_call": {"name": "get_time", "arguments": {}}}]
        if expected == {"city": "杭州", "days": 3}:
            assert '"arguments": {"city": "杭州", "days": 3}' in turn  # not \\u-escaped
        assert ("<|im_start|>user\n<tool_response>\n{\"temp_c\": 21}\n</tool_response>\n"
                "<tool_response>\n12:00\n</tool_response><|im_end|>") in text
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "It is 21 °C."}]
    assert "<|im_start|>assistant\n{\"response\": \"It is 21 °C.\"}<|im_end|>" in \
        chatml.render(history, tools=TOOLS)
    assert "<|im_start|>assistant\nIt is 21 °C.<|im_end|>" in chatml.render(history)


def tools_listing(system: str) -> list:
    """The JSON objects, one per line, after "You can call these tools:"."""
    inner = system.split("You can call these tools:\n", 1)[1].split("\n\n", 1)[0]
    return [json.loads(line) for line in inner.split("\n")]


def test_jsonformat_system_message_lists_the_tools():
    """The tools join the conversation's system message (created when there is none);
    each function is one JSON line (non-ASCII kept); the prompt shows both objects of
    the format lamina reads back."""
    user = {"role": "user", "content": "q"}
    functions = [t["function"] for t in TOOLS]
    f = TOOL_FORMATS["json"]
    for messages, head in [([{"role": "system", "content": "S"}, user], "S\n\n"),
                           ([{"role": "system", "content": ""}, user], ""), ([user], "")]:
        out = tools_as_text(messages, TOOLS)
        assert [m["role"] for m in out] == ["system", "user"] and out[1] == user
        system = out[0]["content"]
        assert system.startswith(head) and not system.startswith("\n")
        assert system.startswith(head + "You can call these tools:")
        assert tools_listing(system) == functions and "杭州" in system
        assert f.open + '{"name": ' in system and f.reply + '"' in system
    assert tools_listing(tools_as_text([user], [TOOLS[0]["function"]])[0]["content"]) == \
        functions[:1]  # a bare function object is listed as it is
    assert tools_as_text([user], None) == [user] and tools_as_text([user], []) == [user]


def test_jsonformat_messages_are_plain_turns():
    calls = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "", "tool_calls": [call("f", "{}")]},
             {"role": "tool", "content": "a"}, {"role": "tool", "content": "b"},
             {"role": "assistant", "content": "x"}, {"role": "tool", "content": "c"}]
    out = tools_as_text(calls, None)
    assert all(set(m) == {"role", "content"} for m in out)
    assert [m["role"] for m in out] == ["user", "assistant", "user", "assistant", "user"]
    assert out[1]["content"] == '{"tool_call": {"name": "f", "arguments": {}}}'
    assert out[2]["content"] == "<tool_response>\na\n</tool_response>\n<tool_response>\nb\n" \
        "</tool_response>"
    assert out[3]["content"] == "x"  # no tools listed: a reply stays plain
    said = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [call("f", "{}")]}]
    assert tools_as_text(said, None)[1]["content"] == \
        'Let me look.\n{"tool_call": {"name": "f", "arguments": {}}}'
    assert tools_as_text(said, TOOLS)[2]["content"] == \
        '{"response": "Let me look."}\n{"tool_call": {"name": "f", "arguments": {}}}'


@pytest.mark.parametrize("calls", [
    [{"function": {"arguments": "{}"}}], [{"function": "f"}], ["f"], {"function": {"name": "f"}},
    [{"function": {"name": 3}}]])
def test_malformed_tool_calls_are_refused(calls):
    good = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [call("f", "{}")]}]
    get_template("chatml").render(good)
    with pytest.raises(TemplateError, match="tool_calls"):
        get_template("chatml").render([good[0], {**good[1], "tool_calls": calls}])
    with pytest.raises(TemplateError, match="tool_calls"):  # only an assistant turn calls
        get_template("chatml").render([{**good[0], "tool_calls": good[1]["tool_calls"]}])
