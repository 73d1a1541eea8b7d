"""Tool calling without a server: prompts with tools rendered as Hugging Face's renderer
renders them (Qwen 2.5 and Llama 3.2 templates), lamina's JSON format for the others,
grammars llama.cpp accepts, the streamed call read back in OpenAI's delta shape, and a
JSON-format reply decoded from its string as it arrives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.server.shapes import ToolChatAnswer
from lamina.server.tools import CallParser, CallText, ToolSpec, _Envelope, _Watch, call_grammar
from lamina.templates import TOOL_FORMATS, from_jinja, get_template

TEMPLATES = Path(__file__).resolve().parent.parent / "fixtures" / "templates"
WEATHER = {"type": "object", "required": ["city"],
           "properties": {"city": {"type": "string", "enum": ["Paris", "杭州"]},
                          "days": {"type": "integer", "minimum": 1, "maximum": 7}}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "get_time", "parameters": {
             "type": "object", "properties": {}}}}]
CONVERSATION = [
    {"role": "system", "content": "You help with travel."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
]


def hf_render(template: str, messages, tools, **kw) -> str:
    """transformers' own chat-template rendering, the reference."""
    from transformers.utils.chat_template_utils import render_jinja_template

    hf_messages = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):  # HF templates take arguments as a JSON value
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.loads(
                c["function"]["arguments"])}} for c in m["tool_calls"]]
        hf_messages.append(m)
    out = render_jinja_template([hf_messages], tools=tools, chat_template=template,
                                add_generation_prompt=True, bos_token="<|begin_of_text|>",
                                eos_token="<|eot_id|>", **kw)
    return out[0][0] if isinstance(out, tuple) else out[0] if isinstance(out, list) else out


@pytest.mark.parametrize(("file", "fmt"), [("qwen2.5-instruct.jinja", "hermes"),
                                          ("llama-3.2-instruct.jinja", "llama3")])
def test_templates_that_know_tools_render_them_like_transformers(file, fmt):
    jinja = (TEMPLATES / file).read_text()
    template = from_jinja(jinja, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    assert template.native_tool_format is TOOL_FORMATS[fmt]
    # Llama 3.2 puts the tools in the first user turn and takes one call per turn
    conversations = [CONVERSATION] if fmt == "hermes" else [CONVERSATION[:2], CONVERSATION[1:]]
    for messages in conversations:
        tools = TOOLS if messages[0]["role"] == "system" or fmt == "hermes" else None
        ours = template.render(messages, tools=tools)
        assert ours == hf_render(jinja, messages, tools)  # both print today's date for Llama
    ours = template.render(CONVERSATION, tools=TOOLS) if fmt == "hermes" else ours
    if fmt == "hermes":
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' in ours
        assert "<tool_response>\n{\"temp_c\": 21}\n</tool_response>" in ours
    else:
        assert '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in ours
        assert "<|start_header_id|>ipython<|end_header_id|>" in ours


def test_other_templates_get_lamina_json_format():
    t = get_template("chatml")
    assert t.native_tool_format is None and t.tool_format is TOOL_FORMATS["json"]
    conversation = [*CONVERSATION, {"role": "assistant", "content": 'It is 21 "C".'},
                    {"role": "user", "content": "And tomorrow?"}]
    text = t.render(conversation, tools=TOOLS)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nYou help with travel.\n\nYou can call these "
                             "tools:\n")
    for tool in TOOLS:
        assert json.dumps(tool["function"], ensure_ascii=False) in system
    assert ('<|im_start|>assistant\n{"tool_call": {"name": "get_weather", "arguments": '
            '{"city": "Paris"}}}<|im_end|>') in text
    assert '<|im_start|>user\n<tool_response>\n{"temp_c": 21}\n</tool_response><|im_end|>' in text
    # a reply in the history is written as the object the model is asked for
    assert '<|im_start|>assistant\n{"response": "It is 21 \\"C\\"."}<|im_end|>' in text
    # without tools in the request a plain reply stays plain
    assert "<|im_start|>assistant\nIt is 21 \"C\".<|im_end|>" in t.render(conversation)
    # no tools and no tool turns: exactly the template's own prompt
    plain = [{"role": "user", "content": "hi"}]
    assert t.render(plain) == get_template("chatml").render(plain)
    assert "# Tools" not in t.render(plain)


@pytest.mark.parametrize("fmt", ["hermes", "llama3", "json"])
def test_call_grammar_is_valid_gbnf(fmt):
    from llama_cpp.llama_grammar import LlamaGrammar

    specs = [ToolSpec(t["function"]["name"], t["function"]["parameters"]) for t in TOOLS]
    f = TOOL_FORMATS[fmt]
    for skip in ("", f.trigger):
        LlamaGrammar.from_string(call_grammar(f, specs, skip=skip), verbose=False)
    if fmt == "json":
        grammar = call_grammar(f, specs, reply=True)
        LlamaGrammar.from_string(grammar, verbose=False)
        assert '"{\\"response\\": "' in grammar
    else:
        with pytest.raises(ValueError, match="no reply object"):
            call_grammar(f, specs, reply=True)


def _stream(fmt_name: str, text: str, reason: str, step: int = 3) -> tuple[list, dict]:
    answer = ToolChatAnswer("m", TOOL_FORMATS[fmt_name])
    chunks = []
    for i in range(0, len(text), step):
        chunks += answer.chunks([CallText(text[i:i + step])])
    chunks += answer.closing(reason)
    whole = ToolChatAnswer("m", TOOL_FORMATS[fmt_name]).whole(
        [CallText(text)], reason, {"prompt_tokens": 1, "completion_tokens": 2,
                                   "total_tokens": 3})
    return chunks, whole


@pytest.mark.parametrize("fmt", ["hermes", "llama3", "json"])
def test_streamed_call_is_openai_deltas_that_join_to_the_whole_answer(fmt):
    args = '{"city": "杭州", "days": 3}'
    text = TOOL_FORMATS[fmt].call_text("get_weather", args)
    chunks, whole = _stream(fmt, text, "tool_calls")
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[:-1]]
    assert deltas[0]["index"] == 0 and deltas[0]["type"] == "function"
    assert deltas[0]["id"].startswith("call_") and deltas[0]["function"]["name"] == "get_weather"
    assert all(set(d) == {"index", "function"} for d in deltas[1:])
    assert "".join(d["function"]["arguments"] for d in deltas) == args
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                        "finish_reason": "tool_calls"}
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"] == {"name": "get_weather",
                                                               "arguments": args}


def test_call_cut_off_keeps_its_text():
    text = TOOL_FORMATS["hermes"].call_text("get_weather", '{"city": "Par')[:-len("}\n</tool_call>")]
    _, whole = _stream("hermes", text, "length")
    call = whole["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call == {"name": "get_weather", "arguments": '{"city": "Par'}
    assert whole["choices"][0]["finish_reason"] == "length"
    _, early = _stream("hermes", "<tool_call>\n{\"na", "length")
    assert early["choices"][0]["message"]["content"] == "<tool_call>\n{\"na"
    assert "tool_calls" not in early["choices"][0]["message"]


def test_parser_holds_back_the_closing_text():
    parser = CallParser(TOOL_FORMATS["hermes"])
    text = TOOL_FORMATS["hermes"].call_text("f", '{"a": 1}')
    sent = "".join(e.arguments for ch in text for e in parser.feed(ch))
    assert '{"a": 1}'.startswith(sent) and "<" not in sent
    assert sent + "".join(e.arguments for e in parser.finish(True)) == '{"a": 1}'


@pytest.mark.parametrize(("fmt", "pieces", "content", "found"), [
    ("hermes", ["Sure", ". <tool", "_call>\n{\"name"], "Sure. ", True),
    ("hermes", ["a <tool", "box> b"], "a <toolbox> b", False),
    ("llama3", ["  {", '"name": "f"'], "", True),
    ("llama3", ["The {braces}"], "The {braces}", False),
])
def test_watch_splits_content_from_the_start_of_a_call(fmt, pieces, content, found):
    watch = _Watch(TOOL_FORMATS[fmt])
    out = ""
    for p in pieces:
        out += watch.push(p)
        if watch.found:
            break
    if not watch.found:
        out += watch.flush()
    assert (out, watch.found) == (content, found)
    if found:
        assert watch.seen.endswith(TOOL_FORMATS[fmt].trigger)


def _envelope(pieces: list[str]) -> tuple[_Envelope, list[str]]:
    env = _Envelope(TOOL_FORMATS["json"])
    out = [p for piece in pieces for p in env.push(piece)]
    return env, out + env.flush()


REPLY_TEXTS = ['Paris: 21 "C"\n\tback\\slash', "杭州 😀 ok", "", "a/b \u0001 \u2028 end"]


@pytest.mark.parametrize("text", REPLY_TEXTS)
@pytest.mark.parametrize("ascii_only", [False, True])
def test_envelope_decodes_a_reply_cut_anywhere(text, ascii_only):
    """Every way of cutting the reply object into two pieces (and one piece per
    character) gives back the text, with escapes (\\uXXXX surrogate pairs
    included) never split."""
    raw = '{"response": ' + json.dumps(text, ensure_ascii=ascii_only) + "}"
    cuts = [[raw[:i], raw[i:]] for i in range(len(raw) + 1)] + [list(raw)]
    for pieces in cuts:
        env, out = _envelope(pieces)
        assert env.kind == "reply" and env.closed
        assert "".join(out) == text, pieces
        assert all(not isinstance(p, CallText) for p in out)


def test_envelope_reply_without_the_lone_surrogate():
    env, out = _envelope(['{"response": "a\\ud83d', '\\", b\\udc00c"}'])
    assert "".join(out) == "a\ufffd\", b\ufffdc"
    "".join(out).encode("utf-8")  # can be sent


def test_envelope_call_is_call_text_and_cut_reply_keeps_what_arrived():
    call = TOOL_FORMATS["json"].call_text("get_weather", '{"city": "Paris"}')
    env, out = _envelope([call[:5], call[5:]])
    assert env.kind == "call" and all(isinstance(p, CallText) for p in out)
    assert "".join(out) == call
    env, out = _envelope(['{"response": "Bonjour \\u00e9t', "\\u"])  # cut at max_tokens
    assert "".join(out) == "Bonjour ét"
    env, out = _envelope(['{"response": "bad \\x and \\uZZZZ"}'])  # never from the grammar
    assert "".join(out) == "bad \\x and \\uZZZZ"
    env, out = _envelope(['{"resp'])  # cut before the key was complete
    assert out == ['{"resp'] and env.kind == "text"


def test_json_reply_in_the_answer_shape():
    """A reply streams as content deltas and ends with finish_reason stop."""
    env, out = _envelope(list('{"response": "Hi there"}'))
    answer = ToolChatAnswer("m", TOOL_FORMATS["json"])
    chunks = answer.chunks(out) + answer.closing("stop")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hi there"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    whole = ToolChatAnswer("m", TOOL_FORMATS["json"]).whole(out, "stop", {})
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "Hi there"}
