"""``lamina merge`` writes folders that transformers loads with peft's merged logits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.convert.conftest import PROMPTS, cpp_logits, hf_logits, llama, sp_ids


@pytest.fixture(scope="module")
def merged_hf(family, tmp_path_factory):
    from lamina.convert.merge import MergeOptions, merge

    out = tmp_path_factory.mktemp("merge") / "alpaca-plus-hf"
    report = merge(MergeOptions(base=family.base_hf, output=out,
                                loras=[family.lora_plus, family.lora_alpaca], shard_bytes=300_000))
    return out, report


def test_merged_folder_loads_in_transformers_with_peft_logits(merged_hf, family, references):
    from tests.fixtures.synthetic import load_hf

    out, report = merged_hf
    assert report.dtype == "float32" and len(report.files) > 2  # sharded + index + config
    model = load_hf(out)
    ref = references["get"]("plus_alpaca")
    for text in PROMPTS:
        ids = sp_ids(family.extended_tokenizer, text)
        diff = np.abs(hf_logits(model, ids) - hf_logits(ref, ids)).max()
        assert diff < 1e-4, (text, diff)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == \
        model.get_input_embeddings().weight.shape[0]
    assert (out / "tokenizer.model").read_bytes() == family.extended_tokenizer.read_bytes()


def test_merged_folder_converts_to_the_same_model(merged_hf, tmp_path, family, variant_gguf):
    """merge then convert == convert with LoRAs directly."""
    from lamina.convert.pipeline import ConvertOptions, convert
    from lamina.quantize.info import model_info

    out, _ = merged_hf
    gguf = tmp_path / "m.gguf"
    convert(ConvertOptions(base=out, output=gguf, outtype="f32"))
    assert model_info(gguf).name == model_info(variant_gguf("plus_alpaca")).name  # one rule
    ids = sp_ids(family.extended_tokenizer, PROMPTS[2])
    a = cpp_logits(llama(gguf), ids)
    b = cpp_logits(llama(variant_gguf("plus_alpaca")), ids)
    assert np.abs(a - b).max() < 1e-4


def test_merge_to_meta_pth_round_trips(tmp_path, family, references):
    """--format pth writes Meta's layout; reading it back as a base gives peft's logits."""
    from lamina.convert.merge import MergeOptions, merge
    from lamina.convert.pipeline import ConvertOptions, convert

    out = tmp_path / "7B"
    report = merge(MergeOptions(base=family.base_hf, output=out, loras=[family.lora_plus],
                                format="pth", dtype="float32"))
    assert {"consolidated.00.pth", "params.json"} <= set(report.files)
    gguf = tmp_path / "pth.gguf"
    convert(ConvertOptions(base=out, output=gguf, outtype="f32"))
    ids = sp_ids(family.extended_tokenizer, PROMPTS[0])
    diff = np.abs(cpp_logits(llama(gguf), ids) - hf_logits(references["get"]("plus"), ids)).max()
    assert diff < 1e-3


def test_merge_bf16_output_is_close(tmp_path, family):
    from lamina.convert.merge import MergeOptions, merge
    from tests.fixtures.synthetic import load_hf

    out = tmp_path / "bf16"
    merge(MergeOptions(base=family.base_hf, output=out, dtype="bfloat16"))
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert str(fh.get_slice("lm_head.weight").get_dtype()) == "BF16"
    a = load_hf(out).model.embed_tokens.weight.detach().numpy()
    b = load_hf(family.base_hf).model.embed_tokens.weight.detach().numpy()
    assert np.abs(a - b).max() < 0.01 * np.abs(b).max()
