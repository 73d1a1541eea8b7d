"""Meta's original LLaMA layout (consolidated.*.pth + params.json) as an HF-named source.

Meta ships one shard per model-parallel rank; each weight is split along the
axis its layer is parallel on, so a tensor is rebuilt by concatenating the
shards along that axis (ROW: output features, COL: input features). Tensors are
presented under HF names and in HF's rotary layout, so that LoRA patches (made
against HF models) and diffs apply unchanged; Meta's q/k rows are already in
llama.cpp's interleaved layout, so this costs one cheap permutation that the
GGUF writer undoes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from lamina.convert.sources import DTYPE_BYTES, load_pickle_weights, to_float32
from lamina.errors import FormatError, InputError
from lamina.files import read_json_object

#: Meta name -> (HF name, concatenation axis across shards or None if replicated)
_GLOBAL = {
    "tok_embeddings.weight": ("model.embed_tokens.weight", 1),
    "norm.weight": ("model.norm.weight", None),
    "output.weight": ("lm_head.weight", 0),
}
_LAYER = {
    "attention.wq.weight": ("self_attn.q_proj.weight", 0),
    "attention.wk.weight": ("self_attn.k_proj.weight", 0),
    "attention.wv.weight": ("self_attn.v_proj.weight", 0),
    "attention.wo.weight": ("self_attn.o_proj.weight", 1),
    "feed_forward.w1.weight": ("mlp.gate_proj.weight", 0),
    "feed_forward.w2.weight": ("mlp.down_proj.weight", 1),
    "feed_forward.w3.weight": ("mlp.up_proj.weight", 0),
    "attention_norm.weight": ("input_layernorm.weight", None),
    "ffn_norm.weight": ("post_attention_layernorm.weight", None),
}
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")


def meta_to_hf_name(name: str) -> tuple[str, int | None] | None:
    """(HF name, shard axis) for a Meta tensor name, or None for unused tensors (rope.freqs)."""
    if name in _GLOBAL:
        return _GLOBAL[name]
    m = _LAYER_KEY.match(name)
    if m and m[2] in _LAYER:
        hf, axis = _LAYER[m[2]]
        return f"model.layers.{m[1]}.{hf}", axis
    return None


def hf_to_meta_name(name: str) -> tuple[str, int | None]:
    """Inverse of ``meta_to_hf_name`` (used by ``lamina merge --format pth``)."""
    for meta, (hf, axis) in _GLOBAL.items():
        if hf == name:
            return meta, axis
    m = re.match(r"^model\.layers\.(\d+)\.(.+)$", name)
    if m:
        for meta, (hf, axis) in _LAYER.items():
            if hf == m[2]:
                return f"layers.{m[1]}.{meta}", axis
    raise FormatError(f"Tensor '{name}' has no Meta-format name.")


def shard_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("consolidated.*.pth"))
    if not files:
        raise InputError(f"No consolidated.*.pth files in '{folder}'.")
    return files


class MetaCheckpoint:
    """A Meta original folder, read lazily (every shard memory-mapped)."""

    kind = "meta"
    chunked = False  # shards are concatenated per tensor; read whole tensors

    def __init__(self, folder: Path) -> None:
        from lamina.convert.family import HParams
        from lamina.convert.llama import LLAMA

        self.folder = Path(folder)
        params_path = self.folder / "params.json"
        self.params = params = read_json_object(params_path)
        self.shards = shard_files(self.folder)
        self._states: list[dict[str, Any]] = [load_pickle_weights(f) for f in self.shards]
        self._map: dict[str, tuple[str, int | None]] = {}
        for meta_name in self._states[0]:
            mapped = meta_to_hf_name(meta_name)
            if mapped is not None:
                self._map[mapped[0]] = (meta_name, mapped[1])
        for need in ("model.embed_tokens.weight", "model.layers.0.mlp.gate_proj.weight"):
            if need not in self._map:
                raise FormatError(f"'{self.shards[0]}' is not a LLaMA checkpoint (no "
                                  f"'{need}' equivalent).")
        try:
            n_embd = int(params["dim"])
            n_head = int(params["n_heads"])
            n_layer = int(params["n_layers"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"'{params_path}' lacks the field {exc} of a LLaMA params.json.") \
                from exc
        vocab = self.shape("model.embed_tokens.weight")[0]
        n_ff = self.shape("model.layers.0.mlp.gate_proj.weight")[0]
        self.hparams = HParams(
            n_vocab=vocab, n_embd=n_embd, n_ff=n_ff, n_layer=n_layer, n_head=n_head,
            n_head_kv=int(params.get("n_kv_heads") or n_head),
            n_ctx=int(params.get("max_seq_len") or (4096 if "n_kv_heads" in params else 2048)),
            rms_norm_eps=float(params.get("norm_eps", 1e-6)),
            rope_theta=float(params.get("rope_theta", 10000.0)),
            family=LLAMA,
        )
        self.config = self._hf_config()

    def _hf_config(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": hp.n_embd, "intermediate_size": hp.n_ff,
            "num_hidden_layers": hp.n_layer, "num_attention_heads": hp.n_head,
            "num_key_value_heads": hp.n_head_kv, "max_position_embeddings": hp.n_ctx,
            "rms_norm_eps": hp.rms_norm_eps, "rope_theta": hp.rope_theta,
            "vocab_size": hp.n_vocab, "bos_token_id": 1, "eos_token_id": 2,
            "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float16",
        }

    def names(self) -> list[str]:
        return list(self._map)

    def _parts(self, name: str) -> tuple[list[Any], int | None]:
        meta_name, axis = self._map[name]
        parts = [s[meta_name] for s in self._states] if axis is not None else [self._states[0][meta_name]]
        return parts, axis

    def shape(self, name: str) -> tuple[int, ...]:
        parts, axis = self._parts(name)
        shape = list(parts[0].shape)
        if axis is not None:
            shape[axis] = sum(int(p.shape[axis]) for p in parts)
        return tuple(shape)

    def dtype(self, name: str) -> str:
        parts, _ = self._parts(name)
        return str(parts[0].dtype).removeprefix("torch.")

    def nbytes(self, name: str) -> int:
        return int(np.prod(self.shape(name))) * DTYPE_BYTES.get(self.dtype(name), 4)

    def get(self, name: str, start: int | None = None, stop: int | None = None,
            native: bool = False) -> np.ndarray:
        from lamina.convert.llama import unpermute_qk

        parts, axis = self._parts(name)
        arrays = [to_float32(p) for p in parts]
        data = arrays[0] if axis is None or len(arrays) == 1 else np.concatenate(arrays, axis=axis)
        if name.endswith("self_attn.q_proj.weight"):
            data = unpermute_qk(data, self.hparams.n_head)
        elif name.endswith("self_attn.k_proj.weight"):
            data = unpermute_qk(data, self.hparams.n_head_kv)
        return data if start is None and stop is None else data[start:stop]

    def tokenizer_model(self) -> Path | None:
        # Meta's download keeps tokenizer.model next to the size folders (7B/, 13B/).
        for cand in (self.folder / "tokenizer.model", self.folder.parent / "tokenizer.model"):
            if cand.is_file():
                return cand
        return None

    def input_files(self) -> list[Path]:
        return list(self.shards)

    def close(self) -> None:
        self._states.clear()
