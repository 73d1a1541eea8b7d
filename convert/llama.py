"""The LLaMA family as data, and its rotary q/k layout.

Covers LLaMA-1, Llama-2 (grouped-query attention), Llama-3 (BPE tokenizer,
``llama3`` RoPE scaling, written as llama.cpp's ``rope_freqs`` tensor),
Chinese-LLaMA/Alpaca 1 and 2, Llama2-Chinese and OneKE: all are
``LlamaForCausalLM`` with different sizes and tokenizers.
"""

from __future__ import annotations

import numpy as np

from lamina.convert.family import Family

LLAMA = Family(
    name="LLaMA",
    architectures=("LlamaForCausalLM", "LLaMAForCausalLM"),
    model_types=("llama",),
    gguf_arch="LLAMA",
    rotary_permute=True,
    covers="LLaMA 1/2/3, Chinese-LLaMA/Alpaca, Llama2-Chinese, OneKE",
)


def permute_qk(weight: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotary layout -> llama.cpp's (interleaved pairs), for q_proj/k_proj.

    HF checkpoints store q/k rows permuted so that rotate_half works on halves;
    llama.cpp (like Meta's original) rotates adjacent pairs. For k_proj pass the
    number of kv heads.
    """
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def unpermute_qk(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of ``permute_qk``: llama.cpp/Meta layout -> HF layout."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )
