"""Test helpers: direct libllama calls (the reference lamina must equal) and imatrix files."""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import numpy as np


def direct_quantize(src: Path, dst: Path, ftype: int, nthread: int = 0) -> int:
    """Call llama_model_quantize exactly as a C program using llama.h would."""
    import llama_cpp.llama_cpp as lc

    lc.llama_backend_init()
    params = lc.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread
    return lc.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))


def imatrix_values(model: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Positive per-column importances for every matrix of ``model`` (as llama-imatrix
    would record: one value per input column of each matmul weight)."""
    import gguf

    rng = np.random.default_rng(seed)
    reader = gguf.GGUFReader(str(model))
    out = {}
    for t in reader.tensors:
        if len(t.shape) >= 2 and t.name != "token_embd.weight":
            out[t.name] = rng.uniform(0.5, 2.0, size=int(t.shape[0])).astype(np.float32)
    return out


def write_imatrix_gguf(path: Path, values: dict[str, np.ndarray], count: float = 10.0) -> Path:
    """llama-imatrix's GGUF layout: <name>.in_sum2 (sums) and <name>.counts."""
    import gguf

    class _IMatrixWriter(gguf.GGUFWriter):
        def add_architecture(self) -> None:  # imatrix files carry no architecture
            pass

    writer = _IMatrixWriter(str(path), arch="")
    writer.add_type(gguf.GGUFType.IMATRIX)
    writer.add_key_value(gguf.Keys.IMatrix.CHUNK_COUNT, 3, gguf.GGUFValueType.UINT32)
    writer.add_key_value(gguf.Keys.IMatrix.DATASETS, ["lamina-test"], gguf.GGUFValueType.ARRAY,
                         sub_type=gguf.GGUFValueType.STRING)
    for name, vals in values.items():
        writer.add_tensor(f"{name}.in_sum2", (vals * count).reshape(1, -1).astype(np.float32))
        writer.add_tensor(f"{name}.counts", np.array([[count]], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_imatrix_dat(path: Path, values: dict[str, np.ndarray], ncall: int = 10) -> Path:
    """The legacy binary layout: sums stored, divided by ncall when read."""
    blob = bytearray(struct.pack("<i", len(values)))
    for name, vals in values.items():
        raw = name.encode()
        blob += struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, vals.size)
        blob += (vals * ncall).astype("<f4").tobytes()
    blob += struct.pack("<i", 3) + struct.pack("<i", 11) + b"lamina-test"
    path.write_bytes(bytes(blob))
    return path


def run_lamina(args: list[str], timeout: int = 300, **kwargs):
    """Run the real CLI in a child process, wide enough that messages do not wrap."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "250", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "lamina", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kwargs)
