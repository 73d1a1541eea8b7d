"""Importance-matrix files (``--imatrix``) as llama.cpp's ``llama-imatrix`` writes them.

Two layouts exist: the GGUF one (``general.type = imatrix``, tensors
``<weight>.in_sum2`` + ``<weight>.counts``) and the older binary ``.dat``.
Both are turned into the per-column mean squared activations that
``llama_model_quantize`` expects, exactly as llama-quantize computes them, so an
imatrix quantization by lamina equals one by llama-quantize.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lamina.errors import FormatError
from lamina.files import require_file
from lamina.gguf_io import has_gguf_signature, open_reader

_SUM_SUFFIXES = (".in_sum2", ".sums")


@dataclass
class ImportanceMatrix:
    """Per-weight importance values, ready for libllama."""

    path: Path
    values: dict[str, np.ndarray]  # tensor name -> float32 vector
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0

    def __len__(self) -> int:
        return len(self.values)


def _bad(path: Path, why: str) -> FormatError:
    return FormatError(
        f"'{path}' is not a usable importance matrix: {why}.",
        hint="Give an imatrix file written by llama.cpp's llama-imatrix (.gguf or legacy .dat).",
    )


def _load_gguf(path: Path) -> ImportanceMatrix:
    try:
        reader = open_reader(path, what="imatrix")
    except FormatError as exc:
        raise _bad(path, f"the GGUF could not be read ({exc.message})") from exc
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        name = tensor.name
        data = np.asarray(tensor.data, dtype=np.float32)
        if name.endswith(".counts"):
            counts[name[: -len(".counts")]] = data.reshape(-1)
            continue
        for suffix in _SUM_SUFFIXES:
            if name.endswith(suffix):
                sums[name[: -len(suffix)]] = data
    if not sums:
        raise _bad(path, "it holds no '<tensor>.in_sum2' entries")
    values: dict[str, np.ndarray] = {}
    for name, total in sums.items():
        count = counts.get(name)
        if count is None or count.size == 0:
            continue  # llama-quantize skips entries without counts too
        per_expert = total.reshape(count.size, -1)
        mean = np.ones_like(per_expert)
        seen = count > 0
        mean[seen] = per_expert[seen] / count[seen, None]
        values[name] = np.ascontiguousarray(mean.reshape(-1), dtype=np.float32)
    datasets_field = reader.fields.get("imatrix.datasets")
    chunks_field = reader.fields.get("imatrix.chunk_count")
    datasets = list(datasets_field.contents()) if datasets_field is not None else []
    chunk_count = int(chunks_field.contents()) if chunks_field is not None else 0
    return ImportanceMatrix(path, values, datasets, chunk_count)


def _load_legacy(path: Path) -> ImportanceMatrix:
    blob = path.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(blob):
            raise _bad(path, "the file ends in the middle of an entry (truncated?)")
        out = struct.unpack_from(fmt, blob, pos)
        pos += size
        return out

    (n_entries,) = take("<i")
    if n_entries <= 0 or n_entries > 1_000_000:
        raise _bad(path, f"it claims {n_entries} entries")
    values: dict[str, np.ndarray] = {}
    for _ in range(n_entries):
        (name_len,) = take("<i")
        if not 0 < name_len < 4096:
            raise _bad(path, "an entry name has an impossible length")
        name = bytes(take(f"<{name_len}s")[0]).decode("utf-8", "replace")
        ncall, nval = take("<ii")
        if nval <= 0:
            raise _bad(path, f"entry '{name}' has {nval} values")
        if pos + 4 * nval > len(blob):
            raise _bad(path, "the file ends in the middle of an entry (truncated?)")
        sums = np.frombuffer(blob, dtype="<f4", count=nval, offset=pos).astype(np.float32)
        pos += 4 * nval
        values[name] = sums / ncall if ncall > 0 else sums.copy()
    chunk_count, datasets = 0, []
    if pos + 4 <= len(blob):
        (chunk_count,) = take("<i")
        if pos + 4 <= len(blob):
            (dlen,) = take("<i")
            if 0 < dlen <= len(blob) - pos:
                datasets = [bytes(take(f"<{dlen}s")[0]).decode("utf-8", "replace")]
    return ImportanceMatrix(path, values, datasets, chunk_count)


def load_imatrix(path: str | Path) -> ImportanceMatrix:
    """Read an imatrix file in either layout; FormatError when it is not one."""
    p = require_file(path, what="importance matrix")
    return _load_gguf(p) if has_gguf_signature(p) else _load_legacy(p)


def check_covers(imatrix: ImportanceMatrix, tensor_columns: dict[str, int]) -> None:
    """Fail early when the imatrix was computed for another model.

    ``tensor_columns`` maps each weight name to its row length; an imatrix
    entry for a weight must have that many values (times the expert count).
    """
    shared = [name for name in imatrix.values if name in tensor_columns]
    if not shared:
        raise FormatError(
            f"The importance matrix '{imatrix.path}' has no entry for any tensor of this model.",
            hint="It was computed for another model; make one for this model with llama-imatrix.",
        )
    for name in shared:
        size, cols = imatrix.values[name].size, tensor_columns[name]
        if size % cols != 0:
            raise FormatError(
                f"The importance matrix entry '{name}' has {size} values, but the tensor has "
                f"rows of {cols}.",
                hint="It was computed for another model; make one for this model with llama-imatrix.",
            )
