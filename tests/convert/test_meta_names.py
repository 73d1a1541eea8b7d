"""Meta's original checkpoint names and shard axes, against references lamina did not write.

The Meta fixture is saved with lamina's own name table (``hf_to_meta_name``),
the one the converter reads, so a swapped w1/w3 or a wrong shard axis would
round-trip through every other test and only break real Meta downloads. Here
the names are checked against gguf-py's TensorNameMap (which lists Meta's
names next to Hugging Face's for each GGUF tensor kind) and the axes against
Meta's published model-parallel layout, written below from Meta's code.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

#: Meta's model-parallel layout (facebookresearch/llama, llama/model.py, fairscale layers):
#: ColumnParallelLinear splits its output features, dim 0 of the [out, in] weight (wq, wk,
#: wv, w1, w3, output); RowParallelLinear its input features, dim 1 (wo, w2);
#: ParallelEmbedding the embedding dimension, dim 1 (tok_embeddings); RMSNorm weights are
#: whole in every shard (None). llama.cpp's convert_legacy_llama.py concatenates alike.
META_AXES = {
    "tok_embeddings.weight": 1,
    "norm.weight": None,
    "output.weight": 0,
    "layers.{i}.attention.wq.weight": 0,
    "layers.{i}.attention.wk.weight": 0,
    "layers.{i}.attention.wv.weight": 0,
    "layers.{i}.attention.wo.weight": 1,
    "layers.{i}.feed_forward.w1.weight": 0,  # gate: w2(silu(w1(x)) * w3(x))
    "layers.{i}.feed_forward.w2.weight": 1,  # down
    "layers.{i}.feed_forward.w3.weight": 0,  # up
    "layers.{i}.attention_norm.weight": None,
    "layers.{i}.ffn_norm.weight": None,
}
N_LAYERS = 3


def _meta_names() -> list[str]:
    return [n.format(i=i) for n in META_AXES for i in (range(N_LAYERS) if "{i}" in n else [0])]


def _axis(meta_name: str) -> int | None:
    return META_AXES[re.sub(r"^layers\.\d+\.", "layers.{i}.", meta_name)]


@pytest.fixture(scope="module")
def tensor_map():
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, N_LAYERS)


def _kind(tensor_map, name: str):
    found = tensor_map.get_type_and_name(name, try_suffixes=(".weight",))
    assert found is not None, f"gguf's TensorNameMap does not know '{name}'"
    return found


def test_every_meta_name_maps_to_the_hf_tensor_of_the_same_gguf_kind(tensor_map):
    from lamina.convert.meta import hf_to_meta_name, meta_to_hf_name

    for meta in _meta_names():
        mapped = meta_to_hf_name(meta)
        assert mapped is not None, meta
        hf, axis = mapped
        assert _kind(tensor_map, hf) == _kind(tensor_map, meta), (meta, hf)
        assert axis == _axis(meta), meta
        assert hf_to_meta_name(hf) == (meta, _axis(meta))
    assert meta_to_hf_name("rope.freqs") is None  # Meta's precomputed table is not a weight


def test_every_hf_llama_tensor_has_its_meta_name(family, tensor_map):
    """The other direction, over the tensors a real HF LLaMA folder holds."""
    from lamina.convert.meta import hf_to_meta_name

    index = json.loads((family.base_hf / "model.safetensors.index.json").read_text())
    names = [n for n in index["weight_map"] if not n.endswith("rotary_emb.inv_freq")]
    assert len(names) == 3 + 9 * json.loads((family.base_hf / "config.json").read_text())[
        "num_hidden_layers"]
    for hf in names:
        meta, axis = hf_to_meta_name(hf)
        assert _kind(tensor_map, meta) == _kind(tensor_map, hf), (hf, meta)
        assert axis == _axis(meta), hf


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotary rows -> Meta's interleaved rows (llama.cpp's convert_hf_to_gguf permute)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def test_the_meta_fixture_is_the_hf_base_split_the_published_way(family, tensor_map):
    """The shards ``save_meta`` wrote, read with torch and joined along Meta's axes,
    are the HF base's tensors of the same GGUF kind (q/k rows in Meta's order)."""
    import torch
    from safetensors import safe_open

    cfg = json.loads((family.base_hf / "config.json").read_text())
    folder = family.extra["meta"]
    shards = [torch.load(p, map_location="cpu", weights_only=True, mmap=True)
              for p in sorted(folder.glob("consolidated.*.pth"))]
    assert len(shards) == 2
    hf: dict[str, np.ndarray] = {}
    for part in sorted(family.base_hf.glob("*.safetensors")):
        with safe_open(str(part), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                hf[_kind(tensor_map, key)[1]] = f.get_tensor(key).float().numpy()
    assert set(shards[0]) == set(shards[1])
    seen = set()
    for meta in shards[0]:
        axis = _axis(meta)
        parts = [s[meta].float().numpy() for s in shards]
        whole = parts[0] if axis is None else np.concatenate(parts, axis=axis)
        if axis is None:
            assert all(np.array_equal(p, whole) for p in parts), meta
        else:
            assert all(p.shape[axis] == whole.shape[axis] // 2 for p in parts), meta
        gguf_name = _kind(tensor_map, meta)[1]
        want = hf[gguf_name]
        if gguf_name.endswith("attn_q.weight"):
            want = _permute(want, cfg["num_attention_heads"])
        elif gguf_name.endswith("attn_k.weight"):
            want = _permute(want, cfg["num_key_value_heads"])
        assert np.array_equal(whole, want), meta
        seen.add(gguf_name)
    assert seen == set(hf)
