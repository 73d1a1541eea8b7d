"""Qwen2 and Llama-3 (byte-level BPE families) against transformers, peft and llama.cpp.

Every GGUF is f32 and run by llama.cpp with an f32 KV cache and no flash
attention; references are transformers models (peft ``merge_and_unload`` for
the LoRA variants) and the Hugging Face tokenizers of the same folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.convert.conftest import (
    BPE_VARIANTS,
    PROMPTS,
    cpp_greedy,
    cpp_logits,
    hf_greedy,
    hf_logits,
    llama,
)

STRINGS = [
    "北京是中国的首都。", "张三在杭州的一家人工智能公司工作。", "龘靐齉爩 𠀀", "「引号」【括号】，全角ＡＢＣ",
    "The quick brown fox jumps over the lazy dog.", "I've been told he's there, 'RE you sure?",
    "Numbers 3.14, 2024 and 1234567", "e-mail: a.b@example.com https://x.org/a?b=1",
    "emoji 🙂🚀👍🏽 👨‍👩‍👧‍👦 🇨🇳", "Mixed 中英文 text with 数字 123",
    " leading", "trailing   ", "  two  spaces", "tabs\tand\nnewlines\n\n\n", "\n", " ", "",
    "\u3000全角空格\u3000", "русский текст", "日本語のテキスト", "한국어", "x" * 80,
]
SPECIAL_STRINGS = {
    "qwen2": ["<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n", "a<|endoftext|>b"],
    "llama3": ["<|start_header_id|>user<|end_header_id|>\n\n你好<|eot_id|>",
               "<|begin_of_text|>hi"],
}
PRE = {"qwen2": "qwen2", "llama3": "llama-bpe"}


def _field(reader, key):
    return reader.fields[key].contents()


@pytest.mark.parametrize("variant", [pytest.param(v, marks=pytest.mark.slow)
                                     if v.startswith("qwen2") else v for v in BPE_VARIANTS])
def test_logits_and_greedy_match_transformers(variant, bpe_gguf, bpe_reference, bpe_tokenizer):
    ref = bpe_reference(variant)
    llm = llama(bpe_gguf(variant))
    tok = bpe_tokenizer(BPE_VARIANTS[variant][0])
    worst = 0.0
    for text in PROMPTS:
        ids = tok(text).input_ids
        worst = max(worst, float(np.abs(cpp_logits(llm, ids) - hf_logits(ref, ids)).max()))
    assert worst < 1e-3, f"{variant}: max |logit diff| = {worst}"
    ids = tok(PROMPTS[0]).input_ids
    assert cpp_greedy(llm, ids, 16) == hf_greedy(ref, ids, 16)


def test_the_lora_and_the_rope_scaling_change_the_model(bpe_gguf, bpe_family, bpe_tokenizer):
    """Guards against parity that would hold anyway: the patches must move logits."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    for family in ("qwen2", "llama3"):
        ids = bpe_tokenizer(family)(PROMPTS[1]).input_ids
        a = cpp_logits(llama(bpe_gguf(family)), ids)
        b = cpp_logits(llama(bpe_gguf(f"{family}_lora")), ids)
        assert float(np.abs(a - b).max()) > 0.05, family
    folder = bpe_family("llama3").base
    cfg = AutoConfig.from_pretrained(str(folder))
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": cfg.rope_parameters["rope_theta"]}
    plain = AutoModelForCausalLM.from_pretrained(str(folder), config=cfg,
                                                 dtype=torch.float32).eval()
    ids = bpe_tokenizer("llama3")(PROMPTS[1]).input_ids
    unscaled = hf_logits(plain, ids)
    assert float(np.abs(cpp_logits(llama(bpe_gguf("llama3")), ids) - unscaled).max()) > 1e-2


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
def test_llama_cpp_tokenizes_like_the_hf_tokenizer(family, bpe_tokenizer, bpe_gguf):
    import llama_cpp

    tok = bpe_tokenizer(family)
    llm = llama_cpp.Llama(str(bpe_gguf(family)), vocab_only=True, verbose=False)
    mismatches = []
    for text in STRINGS + SPECIAL_STRINGS[family]:
        expected = tok(text).input_ids
        got = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if got != expected:
            mismatches.append((text, expected, got))
    assert not mismatches, mismatches[:3]
    # Detokenising round-trips, also through multi-byte characters split across tokens.
    for text in STRINGS[:10]:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        assert llm.detokenize(ids).decode("utf-8") == text


def _vocab(llm):
    import llama_cpp

    return llama_cpp.llama_model_get_vocab(llm._model.model)


def test_qwen2_gguf_vocabulary_is_padded_like_llama_cpp_writes_it(bpe_gguf, bpe_family):
    """Read back by llama.cpp itself: rows, [PADn] tail, types, special ids, template."""
    import json

    import llama_cpp as lc

    llm = lc.Llama(str(bpe_gguf("qwen2")), vocab_only=True, verbose=False)
    meta, vocab = llm.metadata, _vocab(llm)
    assert meta["general.architecture"] == "qwen2"
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "qwen2"
    assert lc.llama_vocab_n_tokens(vocab) == 151936  # the embedding rows, not 151,646 tokens

    def text(i: int) -> str:
        return lc.llama_vocab_get_text(vocab, i).decode()

    def attr(i: int) -> int:
        return int(lc.llama_vocab_get_attr(vocab, i))

    assert text(151646) == "[PAD151646]" and text(151935) == "[PAD151935]"
    assert all(attr(i) == lc.LLAMA_TOKEN_ATTR_UNUSED for i in range(151646, 151936))
    assert text(151644) == "<|im_start|>" and attr(151644) == lc.LLAMA_TOKEN_ATTR_CONTROL
    assert attr(0) == lc.LLAMA_TOKEN_ATTR_NORMAL
    assert lc.llama_vocab_bos(vocab) == 151643  # from config.json (tokenizer_config has none)
    assert lc.llama_vocab_eos(vocab) == 151645  # tokenizer_config.json: <|im_end|>
    assert not lc.llama_vocab_get_add_bos(vocab)
    own = json.loads((bpe_family("qwen2").base / "tokenizer_config.json").read_text())
    assert meta["tokenizer.chat_template"] == own["chat_template"]
    # Tied embeddings: the same tensors except output.weight, the untied [rows, n_embd] head.
    # (Compared by name and shape, not by file size: header padding moves the size by up to
    # the alignment.)
    from lamina.gguf_io import open_reader

    def shapes(path) -> dict[str, tuple[int, ...]]:
        return {t.name: tuple(int(d) for d in t.shape) for t in open_reader(path).tensors}

    untied, tied = shapes(bpe_gguf("qwen2")), shapes(bpe_gguf("qwen2_tied"))
    assert set(untied) - set(tied) == {"output.weight"} and set(tied) <= set(untied)
    assert untied["output.weight"] == untied["token_embd.weight"] == (32, 151936)


def test_llama3_gguf_carries_bpe_tokenizer_and_rope_freqs(bpe_gguf, bpe_family):
    """rope_freqs equals what transformers' own llama3 rope computes (inv_freq ratio)."""
    import torch
    from gguf import GGUFReader
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    r = GGUFReader(bpe_gguf("llama3"))
    assert _field(r, "general.architecture") == "llama"
    assert _field(r, "tokenizer.ggml.pre") == "llama-bpe"
    assert _field(r, "tokenizer.ggml.add_bos_token") is True  # from the TemplateProcessing
    freqs = next(t for t in r.tensors if t.name == "rope_freqs.weight")
    cfg = AutoConfig.from_pretrained(str(bpe_family("llama3").base))
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    dim = cfg.hidden_size // cfg.num_attention_heads
    theta = cfg.rope_parameters["rope_theta"]
    plain = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    np.testing.assert_allclose(np.asarray(freqs.data), (plain / scaled).numpy(), rtol=1e-5)
    assert len(set(np.round(np.asarray(freqs.data), 4))) >= 3  # 1, smoothed, and factor


#: HF -> GGUF names, written out here (not taken from gguf-py, which lamina uses).
_GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _gguf_name(hf: str) -> str:
    if hf in _GGUF_NAMES:
        return _GGUF_NAMES[hf]
    _, _, layer, rest = hf.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{_LAYER_NAMES[module]}.{kind}"


def _interleave(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's rotary layout, written from Meta's definition: rows (h, 2, d/2) -> (h, d/2, 2)."""
    return w.reshape(heads, 2, -1, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@pytest.mark.parametrize("variant", [pytest.param("qwen2_lora", marks=pytest.mark.slow),
                                     "llama3_lora"])
def test_tensors_equal_peft_merge_and_unload(variant, bpe_gguf, bpe_reference):
    from gguf import GGUFReader

    model = bpe_reference(variant)
    cfg = model.config
    got = {t.name: np.asarray(t.data) for t in GGUFReader(bpe_gguf(variant)).tensors}
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias"} <= got.keys() or variant != "qwen2_lora"
    checked = 0
    for hf, tensor in model.state_dict().items():
        want = tensor.detach().float().numpy()
        if variant.startswith("llama3") and ".q_proj." in hf:
            want = _interleave(want, cfg.num_attention_heads)
        elif variant.startswith("llama3") and ".k_proj." in hf:
            want = _interleave(want, cfg.num_key_value_heads)
        np.testing.assert_allclose(got[_gguf_name(hf)], want, atol=1e-6, err_msg=hf)
        checked += 1
    assert checked == len(got) - (1 if "rope_freqs.weight" in got else 0)


CONVERSATIONS = [
    [{"role": "user", "content": "你好"}],
    [{"role": "system", "content": "你是信息抽取助手。"}, {"role": "user", "content": "抽取实体"},
     {"role": "assistant", "content": " {\"人物\": [\"张三\"]} "}, {"role": "user", "content": "Again"}],
]


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
def test_chat_prompt_tokens_equal_apply_chat_template(family, bpe_gguf, bpe_tokenizer):
    """The runtime detects the GGUF's own template; its tokens equal transformers'."""
    import lamina

    tok = bpe_tokenizer(family)
    with lamina.load(bpe_gguf(family), n_ctx=256, n_threads=1) as model:
        assert model.template.name == "gguf"  # the checkpoint's own Jinja text
        for messages in CONVERSATIONS:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert model.template.render(messages) == text
            assert model.chat_tokens(messages) == tok(text, add_special_tokens=False).input_ids


@pytest.mark.parametrize("family, builtin", [("qwen2", "qwen"), ("llama3", "llama3")])
def test_builtin_family_templates_render_like_the_checkpoints(family, builtin, bpe_tokenizer):
    import dataclasses

    from lamina.templates import get_template

    tok = bpe_tokenizer(family)
    bound = dataclasses.replace(get_template(builtin), bos_token=tok.bos_token or "",
                                eos_token=tok.eos_token)
    for messages in CONVERSATIONS:
        assert bound.render(messages) == tok.apply_chat_template(messages, tokenize=False,
                                                                 add_generation_prompt=True)


@pytest.mark.parametrize("variant", ["qwen2_lora", "llama3_lora"])
def test_merge_writes_a_folder_transformers_loads(variant, bpe_family, bpe_reference,
                                                  bpe_tokenizer, tmp_path):
    """`lamina merge` + LoRA -> HF folder: transformers loads it with peft's logits, and
    its tokenizer (the same tokens as the base's)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lamina.convert.merge import MergeOptions, merge

    name = BPE_VARIANTS[variant][0]
    fam = bpe_family(name)
    out = tmp_path / "merged"
    merge(MergeOptions(base=fam.base, output=out, loras=[fam.lora], shard_bytes=4_000_000))
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    ref = bpe_reference(variant)
    tok = bpe_tokenizer(name)
    for text in PROMPTS[:2]:
        ids = tok(text).input_ids
        assert np.abs(hf_logits(model, ids) - hf_logits(ref, ids)).max() < 1e-4
    assert AutoTokenizer.from_pretrained(str(out))(PROMPTS[0]).input_ids == tok(PROMPTS[0]).input_ids
    assert (out / "tokenizer.json").read_bytes() == (fam.base / "tokenizer.json").read_bytes()


def _seed_converter() -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py: $LAMINA_LLAMA_CPP_SRC, or the copy the benchmarks
    unpack from the llama-cpp-python sdist (nothing is downloaded here)."""
    import os

    repo = Path(__file__).resolve().parents[2]
    roots = [Path(os.environ["LAMINA_LLAMA_CPP_SRC"])] if os.environ.get("LAMINA_LLAMA_CPP_SRC") \
        else []
    roots.append(repo / "benchmarks" / ".work" / "sdist" / "llama_cpp_python-0.3.36" / "vendor"
                 / "llama.cpp")
    return next((r / "convert_hf_to_gguf.py" for r in roots
                 if (r / "convert_hf_to_gguf.py").is_file()), None)


@pytest.mark.slow
def test_qwen2_lora_equals_peft_merge_plus_llama_cpp_converter(bpe_family, bpe_reference,
                                                               bpe_gguf, tmp_path):
    """The seed path (peft merge, then llama.cpp's converter) gives the same file content."""
    import shutil
    import subprocess
    import sys

    from gguf import GGUFReader

    script = _seed_converter()
    if script is None:
        pytest.skip("llama.cpp's convert_hf_to_gguf.py is not unpacked (set LAMINA_LLAMA_CPP_SRC)")
    fam = bpe_family("qwen2")
    merged = tmp_path / "merged"
    bpe_reference("qwen2_lora").save_pretrained(str(merged))
    for f in fam.tokenizer.iterdir():
        shutil.copyfile(f, merged / f.name)
    seed = tmp_path / "seed.gguf"
    proc = subprocess.run([sys.executable, str(script), str(merged), "--outtype", "f32",
                           "--outfile", str(seed)], capture_output=True, text=True,
                          cwd=script.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ours, theirs = GGUFReader(bpe_gguf("qwen2_lora")), GGUFReader(seed)
    a = {t.name: np.asarray(t.data) for t in ours.tensors}
    b = {t.name: np.asarray(t.data) for t in theirs.tensors}
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        assert ours.fields[key].contents() == theirs.fields[key].contents(), key
