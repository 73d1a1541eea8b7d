"""Lazy, one-tensor-at-a-time readers for checkpoint files.

Conversion streams: a tensor is read only when it is about to be written, so
peak memory stays near the largest tensor instead of the whole model.
safetensors tensors are read with plain positioned reads into numpy (rows at a
time, no torch, no memory map whose pages would count against the process);
pickle-based .bin/.pth files are loaded with
``torch.load(weights_only=True, mmap=True)``, which refuses to run code.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamina.errors import FormatError, InputError, UnsafeCheckpointError
from lamina.files import read_json_object


@dataclass(frozen=True)
class TensorMeta:
    name: str
    shape: tuple[int, ...]
    dtype: str  # torch dtype name without the "torch." prefix
    file: Path
    offset: int = -1  # absolute byte offset of the data (safetensors only)


class CheckpointFiles:
    """A set of weight files (one, or the shards of an index) read lazily.

    ``get(name)`` returns a torch tensor; only the file holding it is opened.
    """

    def __init__(self, files: list[Path]) -> None:
        if not files:
            raise InputError("No weight files were given.")
        self.files = files
        self._meta: dict[str, TensorMeta] = {}
        self._open: dict[Path, Any] = {}
        for f in files:
            if f.suffix == ".safetensors":
                metas = _scan_safetensors(f)
            else:
                # Keep the last scanned pickle open: the first tensors read come from it.
                self._open = {f: _open_file(f)}
                metas = _pickle_metas(f, self._open[f])
            for meta in metas:
                self._meta[meta.name] = meta

    def names(self) -> list[str]:
        return list(self._meta)

    def meta(self, name: str) -> TensorMeta:
        return self._meta[name]

    def __contains__(self, name: str) -> bool:
        return name in self._meta

    def __iter__(self) -> Iterator[TensorMeta]:
        return iter(self._meta.values())

    def get(self, name: str) -> Any:
        """Load one tensor (torch.Tensor)."""
        meta = self._meta[name]
        handle = self._handle(meta.file)
        if meta.file.suffix == ".safetensors":
            return handle.get_tensor(name)
        return handle[name]

    def array(self, name: str, start: int | None = None, stop: int | None = None,
              native: bool = False) -> np.ndarray:
        """float32 numpy copy of one tensor, or of its rows ``start:stop``.

        safetensors data is read straight from the file (torch is not needed);
        pickled tensors are sliced from their memory-mapped storage. With
        ``native`` a float16 tensor stays float16 (for tensors copied unchanged,
        which then skip two conversions).
        """
        meta = self._meta[name]
        if meta.file.suffix == ".safetensors":
            return _read_rows(meta, start, stop, native)
        tensor = self.get(name)
        if start is not None or stop is not None:
            tensor = tensor[start:stop]
        return to_float32(tensor)

    def _handle(self, file: Path) -> Any:
        if file not in self._open:
            # Keep at most one pickle shard mapped at a time: shards can be GBs.
            if file.suffix != ".safetensors":
                for other in [f for f in self._open if f.suffix != ".safetensors"]:
                    del self._open[other]
            self._open[file] = _open_file(file)
        return self._open[file]

    def close(self) -> None:
        self._open.clear()


def _pickle_metas(file: Path, state: dict[str, Any]) -> list[TensorMeta]:
    metas = []
    for name, t in state.items():
        if not hasattr(t, "shape") or not hasattr(t, "dtype"):
            raise FormatError(f"'{file}' holds '{name}', which is not a tensor.",
                              hint="Expected a state dict of tensors (a PyTorch checkpoint).")
        metas.append(TensorMeta(name, tuple(t.shape), str(t.dtype).removeprefix("torch."), file))
    return metas


_ST_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


def _scan_safetensors(file: Path) -> list[TensorMeta]:
    """Read a safetensors header without touching the data, validating sizes."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                raise ValueError("file shorter than its header")
            (n,) = struct.unpack("<Q", raw_len)
            if n > size - 8:
                raise ValueError("header length points past the end of the file")
            header = json.loads(fh.read(n))
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(
            f"'{file}' is not a valid safetensors file ({exc}).",
            hint="The download may be truncated or corrupt: download it again and check its SHA-256.",
        ) from exc
    metas = []
    data_len = size - 8 - n
    if not isinstance(header, dict):
        raise FormatError(f"'{file}' is not a valid safetensors file (bad header).")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = (int(x) for x in info["data_offsets"])
            shape = tuple(int(d) for d in info["shape"])
            dtype = str(info["dtype"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"'{file}' has a malformed header entry for '{name}'.",
                              hint="The file is corrupt: download it again.") from exc
        if end > data_len:
            raise FormatError(
                f"'{file}' is truncated: tensor '{name}' ends at byte {end} but the data "
                f"section has only {data_len} bytes.",
                hint="Download the file again and check its SHA-256 (lamina checksum).",
            )
        metas.append(TensorMeta(name, shape, _ST_DTYPES.get(dtype, dtype), file,
                                offset=8 + n + start))
    return metas


_NP_DTYPES = {"float32": "<f4", "float16": "<f2", "float64": "<f8", "bfloat16": "<u2"}


def _read_rows(meta: TensorMeta, start: int | None, stop: int | None,
               native: bool = False) -> np.ndarray:
    if meta.dtype not in _NP_DTYPES:
        raise FormatError(f"Tensor '{meta.name}' in '{meta.file}' has dtype {meta.dtype}; "
                          "lamina reads float16/bfloat16/float32 weights.")
    shape = meta.shape or (1,)
    rows = shape[0]
    lo = 0 if start is None else max(0, min(start, rows))
    hi = rows if stop is None else max(lo, min(stop, rows))
    row_elems = math.prod(shape[1:]) if len(shape) > 1 else 1
    np_dtype = np.dtype(_NP_DTYPES[meta.dtype])
    count = (hi - lo) * row_elems
    offset = meta.offset + lo * row_elems * np_dtype.itemsize
    with open(meta.file, "rb") as fh:
        raw = np.fromfile(fh, dtype=np_dtype, count=count, offset=offset)
    if raw.size != count:
        raise FormatError(f"'{meta.file}' is truncated inside tensor '{meta.name}'.",
                          hint="Download the file again and check its SHA-256 (lamina checksum).")
    if meta.dtype == "bfloat16":
        data = (raw.astype(np.uint32) << 16).view(np.float32)
    elif native:
        data = raw
    else:
        data = raw.astype(np.float32, copy=False)
    out_shape = (hi - lo, *shape[1:]) if meta.shape else ()
    return data.reshape(out_shape)


def _open_file(file: Path) -> Any:
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            return safe_open(str(file), framework="pt")
        except Exception as exc:
            raise FormatError(f"Cannot read safetensors file '{file}': {exc}.") from exc
    return load_pickle_weights(file)


def load_pickle_weights(file: Path) -> dict[str, Any]:
    """Load a .bin/.pth state dict without executing pickled code.

    ``weights_only=True`` only rebuilds tensors and plain containers; a pickle
    that tries to call anything else is refused with UnsafeCheckpointError.
    """
    import pickle

    import torch

    try:
        try:
            state = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # Legacy (non-zip) checkpoints cannot be memory-mapped.
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"Refusing to load '{file}': it contains pickled code, not only tensors.",
            hint="Only load checkpoints you trust. Prefer the .safetensors version of this model.",
        ) from exc
    except (EOFError, RuntimeError, OSError, ValueError) as exc:
        raise FormatError(
            f"Cannot read the PyTorch checkpoint '{file}' ({exc}).",
            hint="The file may be truncated or not a PyTorch checkpoint; check its SHA-256.",
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise FormatError(f"'{file}' does not hold a state dict of tensors.")
    return state


#: Bytes per element of the dtypes checkpoints use (for progress and planning).
DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
               "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


def to_float32(tensor: Any) -> Any:
    """torch tensor (any float dtype) -> a private, writable float32 numpy array.

    A float32 tensor from a memory-mapped checkpoint would otherwise share its
    storage with the file mapping, and merging adds to it in place.
    """
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.float32:
        return tensor.numpy().copy()
    return tensor.to(torch.float32).numpy()


class HFCheckpoint:
    """A Hugging Face model folder (any family in ``family.known_families``) as a
    source of float32 tensors in HF names and layout."""

    kind = "hf"
    chunked = True  # tensors can be read a row range at a time

    def __init__(self, folder: Path) -> None:
        from lamina.convert.family import HParams

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"The model folder '{self.folder}' does not exist.")
        self.hparams = HParams.from_hf_config(self.folder)
        self.config: dict[str, Any] = read_json_object(self.folder / "config.json")
        self.files = CheckpointFiles(hf_weight_files(self.folder))

    def names(self) -> list[str]:
        return self.files.names()

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.files.meta(name).shape)

    def nbytes(self, name: str) -> int:
        meta = self.files.meta(name)
        n = 1
        for d in meta.shape:
            n *= d
        return n * DTYPE_BYTES.get(meta.dtype, 4)

    def dtype(self, name: str) -> str:
        return self.files.meta(name).dtype

    def get(self, name: str, start: int | None = None, stop: int | None = None,
            native: bool = False) -> np.ndarray:
        """float32 numpy array of one tensor (or of its rows ``start:stop``)."""
        return self.files.array(name, start, stop, native)

    def tokenizer_model(self) -> Path | None:
        """tokenizer.model or tokenizer.json of the folder (see tokenizer.find_tokenizer)."""
        from lamina.convert.tokenizer import find_tokenizer

        return find_tokenizer(self.folder)

    def input_files(self) -> list[Path]:
        return list(self.files.files)

    def close(self) -> None:
        self.files.close()


def open_checkpoint(folder: Path) -> Any:
    """HF or Meta-original checkpoint folder, detected from its files."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"The base model folder '{folder}' does not exist.",
                         hint="Check the path; BASE is a Hugging Face or Meta model folder.")
    if not folder.is_dir():
        raise InputError(f"The base model '{folder}' is a file; a model folder was expected.")
    if (folder / "params.json").is_file() and any(folder.glob("consolidated.*.pth")):
        from lamina.convert.meta import MetaCheckpoint

        return MetaCheckpoint(folder)
    if (folder / "config.json").is_file():
        return HFCheckpoint(folder)
    raise InputError(
        f"'{folder}' is neither a Hugging Face model folder (config.json + weights) nor a "
        "Meta original folder (params.json + consolidated.*.pth).",
        hint="Point BASE at the folder that holds the model's config and weights.",
    )


def hf_weight_files(folder: Path) -> list[Path]:
    """The weight files of an HF model folder: safetensors preferred, index-aware."""
    for index_name, _suffix in (("model.safetensors.index.json", ".safetensors"),
                               ("pytorch_model.bin.index.json", ".bin")):
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise FormatError(f"'{index}' is not a valid weight index ({exc}).") from exc
            files = sorted({folder / f for f in weight_map.values()})
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise InputError(
                    f"'{folder}' is missing shard(s) listed in {index_name}: {', '.join(missing)}.",
                    hint="Download every shard of the model into the same folder.",
                )
            return files
    single = [folder / "model.safetensors", folder / "pytorch_model.bin"]
    for f in single:
        if f.is_file():
            return [f]
    loose = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if loose:
        return loose
    raise InputError(
        f"No model weights found in '{folder}'.",
        hint="Expected model.safetensors, model-0000x-of-0000y.safetensors with an index, "
        "or pytorch_model.bin, or Meta's consolidated.*.pth with params.json.",
    )
