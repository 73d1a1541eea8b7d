"""Baichuan2 7B (RoPE, 32 layers) and 13B (ALiBi, 40 layers): W_pack, NormHead, LoRA on W_pack.

References (tests/fixtures/baichuan.py): the 7B as a LlamaForCausalLM with W_pack
unpacked, the 13B as a small ALiBi forward pass; LoRAs merged by peft; lm_head rows
normalised as Baichuan2's NormHead does at inference.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.convert.conftest import PROMPTS, cpp_greedy, cpp_logits, hf_greedy, hf_logits, llama
from tests.convert.test_errors import assert_fails

VARIANTS = [(32, False), (32, True), (40, False), (40, True)]


@pytest.fixture(scope="session")
def baichuan(cache_dir):
    from tests.fixtures.baichuan import get_baichuan

    return lambda layers: get_baichuan(cache_dir, layers)


@pytest.fixture(scope="session")
def baichuan_gguf(baichuan, tmp_path_factory):
    from lamina.convert.pipeline import ConvertOptions, convert

    made: dict[tuple[int, bool], object] = {}
    root = tmp_path_factory.mktemp("baichuan")

    def get(layers: int, with_lora: bool):
        if (layers, with_lora) not in made:
            fam = baichuan(layers)
            out = root / f"b{layers}-{with_lora}.gguf"
            convert(ConvertOptions(base=fam.base, output=out, outtype="f32",
                                   loras=[fam.lora] if with_lora else []))
            made[layers, with_lora] = out
        return made[layers, with_lora]

    return get


def _ids(fam, text: str) -> list[int]:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(fam.base / "tokenizer.model")).encode(text)


def _alibi_greedy(state, ids: list[int], n: int) -> list[int]:
    from tests.fixtures.baichuan import alibi_logits

    seq = list(ids)
    for _ in range(n):
        seq.append(int(np.argmax(alibi_logits(state, seq)[-1])))
    return seq[len(ids):]


@pytest.mark.slow
@pytest.mark.parametrize("layers, with_lora", VARIANTS)
def test_logits_and_greedy_match_the_reference(layers, with_lora, baichuan, baichuan_gguf):
    from tests.fixtures.baichuan import alibi_logits, merged_state, reference

    fam = baichuan(layers)
    llm = llama(baichuan_gguf(layers, with_lora))
    model = reference(fam, with_lora) if layers == 32 else None
    state = merged_state(fam, with_lora)
    worst = 0.0
    for text in PROMPTS:
        ids = _ids(fam, text)
        want = hf_logits(model, ids) if model is not None else alibi_logits(state, ids)
        worst = max(worst, float(np.abs(cpp_logits(llm, ids) - want).max()))
    assert worst < 1e-3, worst
    ids = _ids(fam, PROMPTS[0])
    want = hf_greedy(model, ids, 16) if model is not None else _alibi_greedy(state, ids, 16)
    assert cpp_greedy(llm, ids, 16) == want


def test_norm_head_and_the_w_pack_lora_matter(baichuan, baichuan_gguf):
    """Parity that would hold anyway proves nothing: without the NormHead normalisation,
    or without the LoRA on W_pack, the logits are far off."""
    from tests.fixtures.baichuan import alibi_logits, merged_state

    fam = baichuan(40)
    ids = _ids(fam, PROMPTS[1])
    got = cpp_logits(llama(baichuan_gguf(40, True)), ids)
    assert np.abs(got - alibi_logits(merged_state(fam, True, normalise=False), ids)).max() > 0.05
    assert np.abs(got - alibi_logits(merged_state(fam, False), ids)).max() > 0.05


def test_gguf_has_separate_qkv_and_llama_cpp_tokenizes_like_sentencepiece(baichuan,
                                                                        baichuan_gguf):
    import llama_cpp

    fam = baichuan(32)
    llm = llama_cpp.Llama(str(baichuan_gguf(32, False)), vocab_only=True, verbose=False)
    assert llm.metadata["general.architecture"] == "baichuan"
    assert llm.metadata["tokenizer.ggml.add_bos_token"] == "false"  # Baichuan2 adds none
    for text in ["北京是中国的首都。", "Hello world 2024", " two  spaces", "emoji 🙂"]:
        assert llm.tokenize(text.encode(), add_bos=True, special=False) == _ids(fam, text)


def test_w_pack_of_the_wrong_shape(baichuan, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    base = shutil.copytree(baichuan(32).base, tmp_path / "base")
    state = load_file(str(base / "model.safetensors"))
    name = "model.layers.3.self_attn.W_pack.weight"
    state[name] = state[name][:64].clone()
    save_file(state, str(base / "model.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "o.gguf"
    assert_fails(["convert", base, "-o", out], capsys, out, name, "W_pack", "(64, 32)")


def test_merge_keeps_w_pack_and_converts_to_the_same_model(baichuan, baichuan_gguf, tmp_path):
    from safetensors import safe_open

    from lamina.convert.merge import MergeOptions, merge
    from lamina.convert.pipeline import ConvertOptions, convert

    fam = baichuan(32)
    out = tmp_path / "merged"
    merge(MergeOptions(base=fam.base, output=out, loras=[fam.lora]))
    with safe_open(str(out / "model.safetensors"), "np") as fh:
        assert "model.layers.0.self_attn.W_pack.weight" in fh.keys()
    assert json.loads((out / "config.json").read_text())["model_type"] == "baichuan"
    gguf = tmp_path / "m.gguf"
    convert(ConvertOptions(base=out, output=gguf, outtype="f32"))
    ids = _ids(fam, PROMPTS[2])
    a = cpp_logits(llama(gguf), ids)
    b = cpp_logits(llama(baichuan_gguf(32, True)), ids)
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.slow
def test_build_then_extract_baichuan2_13b(baichuan, tmp_path):
    """baichuan2-13b-iepile-lora's path: build with its template, then IEPile extraction."""
    from tests.convert.test_family_build import DOCS, SCHEMA, lamina

    fam = baichuan(40)
    out = tmp_path / "m.gguf"
    proc = lamina("build", fam.base, "--lora", fam.lora, "--type", "Q8_0", "--template",
                  "baichuan2", "-o", out, "--json", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(lamina("info", out, "--json").stdout)
    assert info["chat_template_name"] == "baichuan2" and info["architecture"] == "baichuan"
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    records = tmp_path / "out.jsonl"
    proc = lamina("extract", out, "--schema", json.dumps(SCHEMA, ensure_ascii=False), "-i", docs,
                  "-o", records, "--max-items", "2", "--max-chars", "4", "--max-tokens", "200",
                  "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 2 and all(list(r["result"]) == SCHEMA for r in recs)
