"""The one path by which lamina writes GGUF files.

Tensor data is streamed: the header (metadata + tensor infos) is written from
shapes known up front, then each tensor is produced, converted to the output
type and appended, one at a time. Every command that writes a GGUF (convert,
build, demo) comes through ``write_gguf``; bytes are never written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamina import __version__, gguf_io
from lamina.convert.family import HParams
from lamina.convert.tokenizer import GGUFVocab

#: --outtype names -> (ggml type name for 2-D weights, llama file type name)
OUTTYPES: dict[str, tuple[str, str]] = {
    "f32": ("F32", "ALL_F32"),
    "f16": ("F16", "MOSTLY_F16"),
    "bf16": ("BF16", "MOSTLY_BF16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
}


@dataclass
class PlannedTensor:
    """A tensor to write: its GGUF name, numpy-order shape, and how to make it.

    ``produce`` is called once, when the tensor's turn comes, and must return a
    float32 (or float16) numpy array of ``shape``. Alternatively ``chunks`` yields the tensor
    as consecutive row blocks, each encoded and written as it arrives, so a
    tensor never needs to be in memory whole.
    """

    name: str
    shape: tuple[int, ...]
    produce: Callable[[], np.ndarray] | None = None
    source_bytes: int = 0  # bytes read from inputs, for progress
    chunks: Callable[[], Iterable[np.ndarray]] | None = None


class _StreamedData:
    """Duck-typed array for ``GGUFWriter.write_tensor_data``: encodes row blocks as
    they are written, so GGUFWriter keeps doing all offsets and padding."""

    def __init__(self, t: PlannedTensor, qtype: Any) -> None:
        self.t = t
        self.qtype = qtype
        self.nbytes = _nbytes(t.shape, qtype)
        self.written = 0

    def tofile(self, fout: Any) -> None:
        assert self.t.chunks is not None
        rows = 0
        for block in self.t.chunks():
            if tuple(block.shape[1:]) != tuple(self.t.shape[1:]):
                raise ValueError(f"tensor {self.t.name}: block shape {block.shape}, "
                                 f"planned {self.t.shape}")
            rows += block.shape[0]
            encoded = _encode(block, self.qtype)
            del block
            encoded.tofile(fout)
            self.written += encoded.nbytes
        if rows != self.t.shape[0] or self.written != self.nbytes:
            raise ValueError(f"tensor {self.t.name}: produced {rows} rows / {self.written} "
                             f"bytes, planned {self.t.shape} / {self.nbytes}")


@dataclass
class GGUFMetadata:
    """Everything beyond tensors that a lamina GGUF carries."""

    model_name: str
    hparams: HParams
    vocab: GGUFVocab
    template_name: str | None = None
    template_jinja: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


def tensor_type(name: str, shape: tuple[int, ...], outtype: str) -> Any:
    """ggml type for one tensor: 1-D tensors (norms) stay F32, as llama.cpp expects."""
    import gguf

    if outtype not in OUTTYPES:
        raise ValueError(f"unknown outtype {outtype!r}")
    if len(shape) < 2 or outtype == "f32":
        return gguf.GGMLQuantizationType.F32
    qtype = getattr(gguf.GGMLQuantizationType, OUTTYPES[outtype][0])
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if shape[-1] % block != 0:
        return gguf.GGMLQuantizationType.F16
    return qtype


def _encode(data: np.ndarray, qtype: Any) -> np.ndarray:
    import gguf

    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def _nbytes(shape: tuple[int, ...], qtype: Any) -> int:
    import gguf

    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block * type_size


def padded_vocab(vocab: GGUFVocab, n_vocab: int) -> GGUFVocab:
    """Pad the token list to the embedding rows (HF configs often round vocab_size up).

    The extra ids become ``[PADn]`` tokens of type UNUSED, as llama.cpp's
    converter writes them (Qwen2: 151,646 tokens, 151,936 rows).
    """
    import dataclasses

    import gguf

    if vocab.size >= n_vocab:
        return vocab
    extra = n_vocab - vocab.size
    return dataclasses.replace(
        vocab,
        tokens=vocab.tokens + [f"[PAD{i}]".encode() for i in range(vocab.size, n_vocab)],
        scores=None if vocab.scores is None else vocab.scores + [-1000.0] * extra,
        types=vocab.types + [int(gguf.TokenType.UNUSED)] * extra,
    )


def write_gguf(
    path: Path,
    meta: GGUFMetadata,
    tensors: Iterable[PlannedTensor],
    outtype: str = "f16",
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write a GGUF of the hparams' family at ``path`` (which should be a temporary file).

    Returns a histogram {ggml type name: tensor count}. ``on_progress`` is
    called with the number of output bytes after each tensor.
    """
    import gguf

    planned = list(tensors)
    hp = meta.hparams
    writer = gguf_io.new_writer(path, hp.fam.gguf_arch_name())
    writer.add_name(meta.model_name)
    writer.add_context_length(hp.n_ctx)
    writer.add_embedding_length(hp.n_embd)
    writer.add_block_count(hp.n_layer)
    writer.add_feed_forward_length(hp.n_ff)
    writer.add_head_count(hp.n_head)
    writer.add_head_count_kv(hp.n_head_kv)
    writer.add_rope_dimension_count(hp.head_dim)
    writer.add_layer_norm_rms_eps(hp.rms_norm_eps)
    writer.add_rope_freq_base(hp.rope_theta)
    # llama3 scaling travels as the rope_freqs tensor (see HParams.rope_freq_factors).
    if hp.rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(hp.rope_scaling["factor"]))
    writer.add_file_type(getattr(gguf.LlamaFileType, OUTTYPES[outtype][1]))
    writer.add_vocab_size(hp.n_vocab)

    vocab = padded_vocab(meta.vocab, hp.n_vocab)
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    for add_id, value in ((writer.add_bos_token_id, vocab.bos_id),
                          (writer.add_eos_token_id, vocab.eos_id),
                          (writer.add_unk_token_id, vocab.unk_id),
                          (writer.add_pad_token_id, vocab.pad_id)):
        if value is not None:
            add_id(value)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    writer.add_add_space_prefix(vocab.add_space_prefix)

    if meta.template_jinja:
        writer.add_chat_template(meta.template_jinja)
    gguf_io.add_lamina_metadata(writer, version=__version__, template_name=meta.template_name,
                                provenance=meta.provenance)

    types = []
    histogram: dict[str, int] = {}
    for t in planned:
        qtype = tensor_type(t.name, t.shape, outtype)
        types.append(qtype)
        histogram[qtype.name] = histogram.get(qtype.name, 0) + 1
        if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            np_dtype = np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16
            writer.add_tensor_info(t.name, t.shape, np.dtype(np_dtype), _nbytes(t.shape, qtype))
        else:
            byte_shape = gguf.quant_shape_to_byte_shape(t.shape, qtype)
            writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8),
                                   _nbytes(t.shape, qtype), raw_dtype=qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    written = 0
    for t, qtype in zip(planned, types, strict=True):
        if t.chunks is not None and len(t.shape) > 1:
            streamed = _StreamedData(t, qtype)
            writer.write_tensor_data(streamed)  # type: ignore[arg-type]
            written += streamed.nbytes
            if on_progress is not None:
                on_progress(written)
            continue
        if t.produce is None:
            assert t.chunks is not None
            parts = list(t.chunks())
            data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        else:
            data = t.produce()
        if tuple(data.shape) != tuple(t.shape):
            raise ValueError(f"tensor {t.name}: produced shape {data.shape}, planned {t.shape}")
        encoded = _encode(data, qtype)
        del data
        writer.write_tensor_data(encoded)
        written += encoded.nbytes
        del encoded
        if on_progress is not None:
            on_progress(written)
    writer.close()
    return histogram
