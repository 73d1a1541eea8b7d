"""What ``lamina info`` shows about a GGUF, read from its header without loading it.

Reading goes through :func:`lamina.gguf_io.open_reader` (memory-mapped, so only the
header is touched).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lamina import gguf_io
from lamina.gguf_io import field_value, open_reader
from lamina.quantize.types import ftype_name

#: Tensor types libllama quantizes from (anything else is "already quantized").
FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


@dataclass
class ModelInfo:
    """What ``lamina info`` shows; every field comes from the GGUF header."""

    path: str
    file_bytes: int
    architecture: str
    name: str | None
    file_type: str
    n_params: int
    n_tensors: int
    tensor_types: dict[str, int]  # ggml type name -> number of tensors
    tensor_type_bytes: dict[str, int]  # ggml type name -> bytes of tensor data
    bits_per_weight: float
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    vocab_size: int
    tokenizer_model: str | None
    special_tokens: dict[str, dict[str, Any]]  # role -> {"id": int, "text": str}
    add_bos: bool | None
    chat_template_name: str | None
    chat_template: str | None
    provenance: dict[str, Any] | None
    lamina_version: str | None
    quantization_version: int | None
    metadata_keys: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_SPECIAL_ROLES = ("bos", "eos", "unk", "pad", "sep", "cls", "mask", "eot")


def float_input_problem(reader: Any) -> str | None:
    """Name of the first matrix already stored quantized, or None if all are float.

    libllama refuses to requantize (and the result would lose quality twice),
    so the quantizer checks this before starting.
    """
    for tensor in reader.tensors:
        type_name = tensor.tensor_type.name
        if len(tensor.shape) >= 2 and type_name not in FLOAT_TYPES:
            return f"{tensor.name} is {type_name}"
    return None


def tensor_stats(reader: Any) -> tuple[int, int, int]:
    """(parameters, bytes of tensor data, tensors)."""
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    n_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    return n_params, n_bytes, len(reader.tensors)


def model_info(path: str | Path) -> ModelInfo:
    """Summarise a GGUF file from its header (no model load, no tensor reads)."""
    from gguf import Keys as K

    reader = open_reader(path)
    p = Path(path)
    arch = str(field_value(reader, gguf_io.ARCHITECTURE, "unknown"))
    types: Counter[str] = Counter()
    type_bytes: Counter[str] = Counter()
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] += 1
        type_bytes[tensor.tensor_type.name] += int(tensor.n_bytes)
    n_params, n_bytes, n_tensors = tensor_stats(reader)

    tokens = reader.fields.get(K.Tokenizer.LIST)
    vocab_size = len(tokens.data) if tokens is not None else 0
    token_list = tokens.contents() if tokens is not None else []
    special: dict[str, dict[str, Any]] = {}
    for role in _SPECIAL_ROLES:
        tid = field_value(reader, f"tokenizer.ggml.{role}_token_id")
        if tid is None:
            continue
        text = token_list[tid] if 0 <= int(tid) < len(token_list) else None
        special[role] = {"id": int(tid), "text": text}

    provenance_text = field_value(reader, gguf_io.PROVENANCE)
    provenance: dict[str, Any] | None = None
    if provenance_text:
        try:
            provenance = json.loads(provenance_text)
        except json.JSONDecodeError:
            provenance = {"raw": provenance_text}
    ftype = field_value(reader, K.General.FILE_TYPE)

    def arch_int(key: str) -> int | None:
        value = field_value(reader, key.format(arch=arch))
        return None if value is None else int(value)

    return ModelInfo(
        path=str(p),
        file_bytes=p.stat().st_size,
        architecture=arch,
        name=field_value(reader, K.General.NAME),
        file_type=ftype_name(ftype),
        n_params=n_params,
        n_tensors=n_tensors,
        tensor_types=dict(types.most_common()),
        tensor_type_bytes=dict(type_bytes),
        bits_per_weight=(8.0 * n_bytes / n_params) if n_params else 0.0,
        context_length=arch_int(K.LLM.CONTEXT_LENGTH),
        embedding_length=arch_int(K.LLM.EMBEDDING_LENGTH),
        block_count=arch_int(K.LLM.BLOCK_COUNT),
        head_count=arch_int(K.Attention.HEAD_COUNT),
        head_count_kv=arch_int(K.Attention.HEAD_COUNT_KV),
        vocab_size=vocab_size,
        tokenizer_model=field_value(reader, K.Tokenizer.MODEL),
        special_tokens=special,
        add_bos=field_value(reader, K.Tokenizer.ADD_BOS),
        chat_template_name=field_value(reader, gguf_io.TEMPLATE_NAME),
        chat_template=field_value(reader, gguf_io.CHAT_TEMPLATE_JINJA),
        provenance=provenance,
        lamina_version=field_value(reader, gguf_io.WRITER_VERSION),
        quantization_version=field_value(reader, K.General.QUANTIZATION_VERSION),
        metadata_keys=[k for k in reader.fields if not k.startswith("GGUF.")],
    )
