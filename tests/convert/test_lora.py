"""The merge arithmetic and adapter-config rules, checked against peft's own code."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina.convert.lora import LoraAdapter, LoraConfig, lora_delta
from lamina.errors import FormatError


def _cfg(**kw):
    return LoraConfig.from_dict({"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], **kw})


def test_scale_is_alpha_over_r_or_sqrt_r_for_rslora():
    assert _cfg().scale_for("model.layers.0.self_attn.q_proj") == 2.0
    assert _cfg(use_rslora=True).scale_for("x.q_proj") == pytest.approx(16 / np.sqrt(8))


def test_rank_and_alpha_patterns_override_per_module():
    cfg = _cfg(rank_pattern={"v_proj": 4}, alpha_pattern={"layers.1.self_attn.v_proj": 32})
    assert cfg.scale_for("model.layers.0.self_attn.v_proj") == 16 / 4
    assert cfg.scale_for("model.layers.1.self_attn.v_proj") == 32 / 4
    assert cfg.scale_for("model.layers.1.self_attn.q_proj") == 2.0


@pytest.mark.parametrize("bad, words", [
    ({"use_dora": True}, "DoRA"),
    ({"peft_type": "IA3"}, "IA3"),
    ({"bias": "all"}, "bias"),
    ({"r": 0}, "rank"),
])
def test_unsupported_configs_are_refused(bad, words):
    with pytest.raises(FormatError, match=words):
        _cfg(**bad)


@pytest.mark.parametrize("fan_in_fan_out", [False, True])
def test_delta_matches_peft_transpose_rule(fan_in_fan_out):
    import torch
    from peft.utils.other import transpose

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 24), dtype=np.float32), rng.standard_normal((40, 4), dtype=np.float32)
    expected = transpose(torch.from_numpy(b) @ torch.from_numpy(a), fan_in_fan_out) * 0.5
    got = lora_delta(a, b, 0.5, fan_in_fan_out=fan_in_fan_out)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6, atol=1e-6)
    # Row slices (how big tensors are streamed) equal slices of the full delta.
    rows = got.shape[0]
    parts = [lora_delta(a, b, 0.5, fan_in_fan_out=fan_in_fan_out, rows=(lo, min(rows, lo + 7)))
             for lo in range(0, rows, 7)]
    np.testing.assert_allclose(np.concatenate(parts), got, rtol=1e-6, atol=1e-6)


def test_adapter_index_maps_peft_keys_to_base_tensors(family):
    ad = LoraAdapter(family.lora_plus)
    assert "model.layers.0.self_attn.q_proj.weight" in ad.pairs
    assert set(ad.full) == {"model.embed_tokens.weight", "lm_head.weight"}
    assert ad.config.modules_to_save == ("embed_tokens", "lm_head")


def test_streamed_chunks_give_the_same_gguf_as_whole_tensors(family, tmp_path, monkeypatch):
    """Tiny chunks (a few rows, q/k heads one by one) must give the same tensors as one
    chunk per tensor (up to float rounding of the BLAS kernels)."""
    from gguf import GGUFReader

    from lamina.convert import plan
    from lamina.convert.pipeline import ConvertOptions, convert

    def run(out):
        convert(ConvertOptions(base=family.base_hf, output=out, outtype="f32",
                               loras=[family.lora_plus_safetensors, family.lora_alpaca]))
        return {t.name: np.array(t.data) for t in GGUFReader(out).tensors}

    monkeypatch.setattr(plan, "CHUNK_ELEMENTS", 1 << 30)
    whole = run(tmp_path / "whole.gguf")
    monkeypatch.setattr(plan, "CHUNK_ELEMENTS", 200)
    chunked = run(tmp_path / "chunked.gguf")
    assert whole.keys() == chunked.keys()
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=0, atol=1e-6, err_msg=name)


def test_adapter_without_weights_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "target_modules": ["q_proj"]}))
    from lamina.errors import InputError

    with pytest.raises(InputError, match="No adapter weights"):
        LoraAdapter(tmp_path)


def test_config_variants_match_peft_merge(family, references, tmp_path):
    """rsLoRA, rank/alpha patterns and a LoRA on the embedding, merged like peft does."""
    import copy

    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from lamina.convert.pipeline import ConvertOptions, convert
    from lamina.demo.checkpoints import _randomize_lora, merged_with
    from tests.convert.conftest import PROMPTS, cpp_logits, hf_logits, llama, sp_ids

    base = references["get"]("base")
    cfg = PeftLoraConfig(r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj", "down_proj"],
                         use_rslora=True, rank_pattern={"down_proj": 2},
                         alpha_pattern={"q_proj": 16}, lora_dropout=0.0, task_type="CAUSAL_LM")
    peft_model = get_peft_model(copy.deepcopy(base), cfg)
    _randomize_lora(peft_model, seed=9, scale=0.2)
    lora = tmp_path / "variant_lora"
    peft_model.save_pretrained(str(lora))
    ref = merged_with(base, lora)
    out = tmp_path / "v.gguf"
    convert(ConvertOptions(base=family.base_hf, output=out, loras=[lora], outtype="f32"))
    llm = llama(out)
    for text in PROMPTS[:2]:
        ids = sp_ids(family.base_tokenizer, text)
        assert np.abs(cpp_logits(llm, ids) - hf_logits(ref, ids)).max() < 1e-3
    assert np.abs(hf_logits(ref, ids) - hf_logits(base, ids)).max() > 0.01  # the LoRA matters
