"""The LLaMA architecture as data: hyper-parameters, HF -> GGUF names, q/k layout.

Covers LLaMA-1, Llama-2 (grouped-query attention), Chinese-LLaMA/Alpaca 1 and 2,
Llama2-Chinese and OneKE: all are ``LlamaForCausalLM`` with different sizes.
The tensor-name table comes from gguf-py's ``TensorNameMap`` (the same one
llama.cpp's converter uses), so names never drift from what llama.cpp loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamina.errors import FormatError, InputError
from lamina.files import read_json_object


@dataclass
class LlamaHParams:
    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ctx: int
    rms_norm_eps: float
    rope_theta: float
    tie_embeddings: bool = False
    rope_scaling: dict[str, Any] | None = None

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_hf_config(cls, folder: Path) -> LlamaHParams:
        path = folder / "config.json"
        if not path.is_file():
            raise InputError(
                f"No config.json in '{folder}'.",
                hint="A Hugging Face model folder needs config.json next to its weights.",
            )
        cfg = read_json_object(path)
        arch = (cfg.get("architectures") or ["LlamaForCausalLM"])[0]
        if cfg.get("model_type", "llama") != "llama" or "Llama" not in arch:
            raise FormatError(
                f"'{folder}' holds a '{cfg.get('model_type')}' model ({arch}); lamina converts "
                "LLaMA-family models only.",
            )
        if cfg.get("attention_bias") or cfg.get("mlp_bias"):
            raise FormatError(f"'{folder}' uses attention/MLP biases, which LLaMA-family "
                              "models lamina converts do not have.")
        # transformers 5 moved rope settings into "rope_parameters".
        rope = cfg.get("rope_parameters") or {}
        rope_theta = cfg.get("rope_theta") or rope.get("rope_theta") or 10000.0
        rope_scaling = cfg.get("rope_scaling")
        if rope_scaling is None and rope.get("rope_type", "default") != "default":
            rope_scaling = rope
        try:
            n_head = int(cfg["num_attention_heads"])
            return cls(
                n_vocab=int(cfg["vocab_size"]),
                n_embd=int(cfg["hidden_size"]),
                n_ff=int(cfg["intermediate_size"]),
                n_layer=int(cfg["num_hidden_layers"]),
                n_head=n_head,
                n_head_kv=int(cfg.get("num_key_value_heads") or n_head),
                n_ctx=int(cfg.get("max_position_embeddings", 2048)),
                rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
                rope_theta=float(rope_theta),
                tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                rope_scaling=rope_scaling,
            )
        except KeyError as exc:
            raise FormatError(f"'{path}' lacks the field {exc} needed for a LLaMA model.") from exc


def gguf_tensor_name(hf_name: str, n_layer: int) -> str | None:
    """GGUF name for an HF LLaMA tensor name, or None for tensors llama.cpp does not use."""

    if hf_name.endswith("rotary_emb.inv_freq"):
        return None
    name_map = _name_map(n_layer)
    return name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))


_NAME_MAPS: dict[int, Any] = {}


def _name_map(n_layer: int) -> Any:
    import gguf

    if n_layer not in _NAME_MAPS:
        _NAME_MAPS[n_layer] = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    return _NAME_MAPS[n_layer]


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


def qk_heads(hf_name: str, hp: LlamaHParams) -> int | None:
    """Number of heads to permute by for an HF tensor, or None if not q/k."""
    if hf_name.endswith("self_attn.q_proj.weight"):
        return hp.n_head
    if hf_name.endswith("self_attn.k_proj.weight"):
        return hp.n_head_kv
    return None
