"""llama.cpp on lamina's f32 GGUF vs transformers/peft: logits to 1e-3, greedy tokens equal."""

from __future__ import annotations

import numpy as np
import pytest

from tests.convert.conftest import (
    PROMPTS,
    VARIANTS,
    cpp_greedy,
    cpp_logits,
    hf_greedy,
    hf_logits,
    llama,
    sp_ids,
)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_logits_and_greedy_match_reference(variant, family, references, variant_gguf):
    ref = references["get"](variant)
    llm = llama(variant_gguf(variant))
    tok = getattr(family, VARIANTS[variant][3])
    worst = 0.0
    for text in PROMPTS:
        ids = sp_ids(tok, text)
        assert llm.tokenize(text.encode("utf-8")) == ids, text
        diff = float(np.abs(cpp_logits(llm, ids) - hf_logits(ref, ids)).max())
        worst = max(worst, diff)
    assert worst < 1e-3, f"{variant}: max |logit diff| = {worst}"
    ids = sp_ids(tok, PROMPTS[0])
    assert cpp_greedy(llm, ids) == hf_greedy(ref, ids)


def test_lora_actually_changes_the_model(references, variant_gguf, family):
    """Guards against a merge that silently does nothing: patched logits must move."""
    base, merged = llama(variant_gguf("base")), llama(variant_gguf("plus_alpaca"))
    ids = sp_ids(family.base_tokenizer, PROMPTS[1])
    a = cpp_logits(base, ids)
    b = cpp_logits(merged, ids)[:, : a.shape[1]]
    assert float(np.abs(a - b).max()) > 0.05


def test_bin_and_safetensors_adapters_give_the_same_file_tensors(variant_gguf):
    from gguf import GGUFReader

    a = {t.name: np.array(t.data) for t in GGUFReader(variant_gguf("plus")).tensors}
    b = {t.name: np.array(t.data) for t in GGUFReader(variant_gguf("plus_st")).tensors}
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
