"""Chat templates: exact prompt strings, BOS/EOS tokens, sandboxing, detection."""

from __future__ import annotations

import pytest

from lamina.errors import TemplateError
from lamina.templates import (
    ALPACA2_SYSTEM,
    detect_template,
    from_jinja,
    get_template,
    list_templates,
)

TWO_TURNS = [
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！"},
    {"role": "user", "content": "介绍一下北京"},
]
WITH_SYSTEM = [{"role": "system", "content": "SYS"}, *TWO_TURNS]

EXPECTED = {
    "alpaca": (
        "<s>Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n\n你好\n\n### Response:\n\n你好！</s>\n\n"
        "### Instruction:\n\n介绍一下北京\n\n### Response:\n\n"
    ),
    "alpaca2": (
        f"<s>[INST] <<SYS>>\n{ALPACA2_SYSTEM}\n<</SYS>>\n\n你好 [/INST] 你好！ </s>"
        "<s>[INST] 介绍一下北京 [/INST]"
    ),
    "llama2": "<s>[INST] 你好 [/INST] 你好！ </s><s>[INST] 介绍一下北京 [/INST]",
    "llama2_zh": (
        f"<s>[INST] <<SYS>>\n{ALPACA2_SYSTEM}\n<</SYS>>\n\n你好 [/INST] 你好！ </s>"
        "<s>[INST] 介绍一下北京 [/INST]"
    ),
    "flagalpha": (
        "<s>Human: 你好\n</s><s>Assistant: 你好！\n</s><s>Human: 介绍一下北京\n</s>"
        "<s>Assistant: "
    ),
    "llama3": (
        "<s><|start_header_id|>user<|end_header_id|>\n\n你好<|eot_id|><|start_header_id|>"
        "assistant<|end_header_id|>\n\n你好！<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\n介绍一下北京<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "qwen": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n你好"
        "<|im_end|>\n<|im_start|>assistant\n你好！<|im_end|>\n<|im_start|>user\n介绍一下北京"
        "<|im_end|>\n<|im_start|>assistant\n"
    ),
    "vicuna": (
        "<s>A chat between a curious user and an artificial intelligence assistant. The "
        "assistant gives helpful, detailed, and polite answers to the user's questions. "
        "USER: 你好 ASSISTANT: 你好！</s><s>USER: 介绍一下北京 ASSISTANT:"
    ),
    "baichuan": "<reserved_102>你好<reserved_103>你好！<reserved_102>介绍一下北京<reserved_103>",
    "baichuan2": "<reserved_106>你好<reserved_107>你好！<reserved_106>介绍一下北京<reserved_107>",
    "chatglm3": (
        "[gMASK]sop<|system|>\nYou are ChatGLM3, a large language model trained by Zhipu.AI. "
        "Follow the user's instructions carefully. Respond using markdown.<|user|>\n你好"
        "<|assistant|>你好！<|user|>\n介绍一下北京<|assistant|>"
    ),
    "chatml": (
        "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n你好！<|im_end|>\n"
        "<|im_start|>user\n介绍一下北京<|im_end|>\n<|im_start|>assistant\n"
    ),
    "raw": "你好\n你好！\n介绍一下北京",
}

EXPECTED_SYSTEM = {
    "alpaca": "<s>SYS\n\n### Instruction:\n\n你好\n\n### Response:\n\n你好！</s>\n\n",
    "alpaca2": "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\n你好 [/INST] 你好！ </s><s>[INST] 介绍",
    "llama2": "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\n你好 [/INST]",
    "llama2_zh": "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\n你好 [/INST] 你好！ </s><s>[INST] 介绍",
    "flagalpha": "<s>System: SYS\n</s><s>Human: 你好\n</s>",
    "llama3": "<s><|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|><|start_header_id|>u",
    "qwen": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\n你好",
    "vicuna": "<s>SYS USER: 你好 ASSISTANT: 你好！</s><s>USER: ",
    "baichuan": "SYS<reserved_102>你好<reserved_103>",
    "baichuan2": "SYS<reserved_106>你好<reserved_107>",
    "chatglm3": "[gMASK]sop<|system|>\nSYS<|user|>\n你好<|assistant|>",
    "chatml": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\n你好",
    "raw": "SYS\n你好\n",
}


def test_the_builtin_templates_exist():
    assert [t.name for t in list_templates()] == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_template_renders_exact_prompt(name):
    assert get_template(name).render(TWO_TURNS) == EXPECTED[name]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_system_prompt_replaces_default(name):
    assert get_template(name).render(WITH_SYSTEM).startswith(EXPECTED_SYSTEM[name])


def test_flagalpha_carries_seed_sampling_defaults():
    t = get_template("flagalpha")
    assert dict(t.sampling_defaults) == {"temperature": 0.3, "top_k": 50, "top_p": 0.95,
                                         "repeat_penalty": 1.3}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_jinja_text_is_self_contained(name):
    """What convert writes into the GGUF renders the same without lamina's context."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(get_template(name).jinja).render(
        messages=TWO_TURNS, add_generation_prompt=True, bos_token="<s>", eos_token="</s>")
    assert text == EXPECTED[name]


def test_unknown_template_names_the_valid_ones():
    with pytest.raises(TemplateError) as exc:
        get_template("vicuna2")
    assert "vicuna2" in exc.value.message and "alpaca2" in exc.value.hint


def test_old_flagalpha_name_is_not_a_silent_alias_of_llama2_zh():
    """'llama2-zh' meant FlagAlpha's format; seed 002's llama2_zh is Chinese-Alpaca-2."""
    with pytest.raises(TemplateError) as exc:
        get_template("llama2-zh")
    assert "'flagalpha'" in exc.value.hint and "'llama2_zh'" in exc.value.hint
    assert get_template("llama2_zh").render(TWO_TURNS) == get_template("alpaca2").render(TWO_TURNS)
    # A GGUF written under the old name still finds its format through the Jinja text.
    old = {"lamina.chat_template.name": "llama2-zh",
           "tokenizer.chat_template": get_template("flagalpha").jinja}
    assert detect_template(old).name == "flagalpha"


@pytest.mark.parametrize("messages", [
    [{"role": "robot", "content": "x"}],
    [{"content": "x"}],
    [{"role": "user", "content": 3}],
    [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}],
    "not a list",
])
def test_bad_messages_are_a_clear_error(messages):
    with pytest.raises(TemplateError):
        get_template("alpaca2").render(messages)


@pytest.mark.parametrize("evil", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('echo pwned').read() }}",
    "{% set x = messages.append({'role': 'user', 'content': 'x'}) %}{{ x }}",
])
def test_file_templates_cannot_run_code(evil):
    with pytest.raises(TemplateError):
        from_jinja(evil).render(TWO_TURNS)


def test_file_template_with_syntax_error_fails_at_load():
    with pytest.raises(TemplateError, match="not valid Jinja"):
        from_jinja("{% for m in messages %}")


def test_detect_prefers_lamina_name_then_jinja():
    assert detect_template({"lamina.chat_template.name": "flagalpha"}).name == "flagalpha"
    own = "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    t = detect_template({"tokenizer.chat_template": own})
    assert t.name == "gguf"
    assert t.render(TWO_TURNS[:1]) == "<s><user>你好"
    builtin = get_template("chatml")
    assert detect_template({"tokenizer.chat_template": builtin.jinja}) is builtin
    assert detect_template({}).name == "alpaca2"


@pytest.mark.parametrize("arch, tokenizer, name", [
    ("qwen2", "gpt2", "qwen"), ("llama", "gpt2", "llama3"), ("llama", "llama", "alpaca2"),
    ("baichuan", "llama", "baichuan2")])
def test_detect_falls_back_to_the_family_format(arch, tokenizer, name):
    meta = {"general.architecture": arch, "tokenizer.ggml.model": tokenizer}
    assert detect_template(meta).name == name


def test_rendered_markers_become_bos_eos_tokens(model):
    """Rendered '<s>'/'</s>' are the real BOS/EOS ids; the vocabulary (add_bos on
    here) adds a BOS to a prompt that does not render one, and never a second."""
    bos, eos = model.llama.token_bos(), model.llama.token_eos()
    assert model.add_bos and not model.add_eos
    for name, n_bos, n_eos in (("alpaca2", 2, 1), ("flagalpha", 4, 3), ("chatml", 1, 0),
                               ("alpaca", 1, 1), ("raw", 1, 0)):
        toks = model.chat_tokens(TWO_TURNS, get_template(name))
        assert toks.count(bos) == n_bos, name
        assert toks.count(eos) == n_eos, name
        assert toks[0] == bos, name
    toks = model.chat_tokens(TWO_TURNS, get_template("flagalpha"))
    first_turn = get_template("flagalpha").render(TWO_TURNS[:1], add_generation_prompt=False)
    first = model.tokenize(first_turn, add_bos=False)
    assert first[-1] == eos and toks[: len(first)] == first
    # the text between markers round-trips
    assert model.detokenize(toks[1:4]).strip().startswith("Human")


def test_plain_text_tokenizes_like_sentencepiece(model, family):
    """SentencePiece is the reference tokenizer for LLaMA vocabularies."""
    import sentencepiece as spm

    text = "北京是中国的首都。Hello world 2024"
    n_vocab = model.llama.n_vocab()
    for path in (family.extended_tokenizer, family.base_tokenizer):
        sp = spm.SentencePieceProcessor(model_file=str(path))
        if sp.get_piece_size() == n_vocab:
            break
    else:
        pytest.fail("no family tokenizer matches the model's vocabulary size")
    assert model.tokenize(text) == [model.llama.token_bos(), *sp.encode(text)]
    assert model.detokenize(model.tokenize(text, add_bos=False)).strip() == text
