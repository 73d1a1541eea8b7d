"""``lamina quantize``: llama.cpp's own quantizer, with checks first and no half files.

The bytes come from libllama's ``llama_model_quantize`` (the code behind
llama.cpp's ``llama-quantize``), so a lamina Q4_K_M is exactly llama.cpp's
Q4_K_M. What lamina adds is everything around that call: the input is checked
with gguf-py before libllama sees it (wrong file, truncated file, already
quantized, missing imatrix, no disk space), the call runs in a child process
(``worker.py``) that reports progress per tensor and can be killed on Ctrl-C,
and the result is written through ``atomic_output``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.errors import FormatError, InputError, LaminaError
from lamina.files import atomic_output, check_output_path
from lamina.gguf_io import UnknownTensorTypeError, open_reader
from lamina.quantize.info import float_input_problem, tensor_stats
from lamina.quantize.types import QuantType, get_quant_type


class QuantizeError(LaminaError):
    """libllama refused or failed to quantize the input."""


@dataclass
class QuantizeReport:
    input: Path
    output: Path
    qtype: str
    input_bytes: int
    output_bytes: int
    n_params: int
    bits_per_weight: float  # of the output's tensor data (llama.cpp's "BPW")
    seconds: float
    type_histogram: dict[str, int]  # ggml type name -> tensors in the output
    input_bits_per_weight: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"input": str(self.input), "output": str(self.output), "type": self.qtype,
                "input_bytes": self.input_bytes, "output_bytes": self.output_bytes,
                "n_params": self.n_params, "bits_per_weight": round(self.bits_per_weight, 4),
                "input_bits_per_weight": round(self.input_bits_per_weight, 4),
                "seconds": round(self.seconds, 3), "tensors": self.type_histogram}


#: on_tensor(index, total, name), called as libllama starts each tensor.
TensorCallback = Callable[[int, int, str], None]


def _imatrix_columns(reader: Any) -> dict[str, int]:
    return {t.name: int(t.shape[0]) for t in reader.tensors if len(t.shape) >= 2}


def check_inputs(input_path: str | Path, qt: QuantType, imatrix: str | Path | None) -> Any:
    """Everything that can be wrong with the inputs, found before libllama runs."""
    reader = open_reader(input_path)
    if qt.needs_float_input:
        problem = float_input_problem(reader)
        if problem is not None:
            raise FormatError(
                f"'{input_path}' is already quantized ({problem}); {qt.name} must be made "
                "from an f32/f16/bf16 GGUF.",
                hint="Quantize the f16 file written by `lamina convert` (or use `lamina build` "
                     "from the original checkpoint); requantizing loses quality twice.",
            )
    if qt.needs_imatrix and imatrix is None:
        raise InputError(
            f"{qt.name} needs an importance matrix: libllama refuses it without one.",
            hint="Pass --imatrix FILE (made with llama.cpp's llama-imatrix), or choose a type "
                 "without this need such as Q2_K, IQ3_S or Q4_K_M.",
        )
    if imatrix is not None:
        from lamina.quantize.imatrix import check_covers, load_imatrix

        check_covers(load_imatrix(imatrix), _imatrix_columns(reader))
    return reader


def _check_disk_space(output: Path, n_params: int, qt: QuantType, input_bytes: int) -> None:
    """Refuse early when the output clearly cannot fit (the real check is the write)."""
    estimate = input_bytes if qt.only_copy or qt.bpw >= 16 else int(n_params * qt.bpw / 8 * 1.05)
    parent = output.parent if str(output.parent) else Path(".")
    free = shutil.disk_usage(parent).free
    if estimate > free:
        from lamina.files import human_bytes

        raise InputError(
            f"Not enough disk space for '{output}': about {human_bytes(estimate)} needed, "
            f"{human_bytes(free)} free.",
            hint="Free some space or write the output elsewhere with -o.",
        )


def _run_worker(job: dict[str, Any], on_tensor: TensorCallback | None) -> str | None:
    """Run worker.py; returns libllama's error message, or None on success."""
    with tempfile.TemporaryFile(mode="w+b") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lamina.quantize.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file, text=True,
        )
        done: dict[str, Any] | None = None
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "tensor" and on_tensor is not None:
                    on_tensor(event["index"], event["total"], event["name"])
                elif event.get("event") == "done":
                    done = event
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if done is not None:
            if done["rc"] == 0:
                return None
            return done.get("error") or f"libllama returned {done['rc']}"
        err_file.seek(0)
        tail = err_file.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        detail = " ".join(tail) if tail else f"exit status {proc.returncode}"
        return f"the quantizer process crashed ({detail})"


def _explain(error: str, output: Path) -> LaminaError:
    low = error.lower()
    if "iostream" in low or "no space" in low or ("failed to open" in low and "output" in low):
        return InputError(
            f"Writing '{output}' failed: the disk may be full or the folder not writable "
            f"({error}).",
            hint="Free some space or write the output elsewhere with -o.",
        )
    if "imatrix" in low or "importance matrix" in low:
        return QuantizeError(f"libllama needs an importance matrix: {error}.",
                             hint="Pass --imatrix FILE made with llama.cpp's llama-imatrix.")
    return QuantizeError(f"libllama could not quantize the model: {error}.")


def quantize(
    input_path: str | Path,
    output: str | Path,
    qtype: str = "Q4_K_M",
    *,
    n_threads: int | None = None,
    imatrix: str | Path | None = None,
    keep_output_f16: bool = False,
    force: bool = False,
    on_tensor: TensorCallback | None = None,
) -> QuantizeReport:
    """Quantize a GGUF with libllama; the output equals llama-quantize's for the same type.

    ``keep_output_f16`` stores output.weight as F16 (llama-quantize's
    ``--output-tensor-type f16``): bigger file, often better quality at low bits.
    """
    qt = get_quant_type(qtype)
    src = Path(input_path)
    out = Path(output)
    reader = check_inputs(src, qt, imatrix)
    n_params, input_tensor_bytes, _ = tensor_stats(reader)
    del reader
    check_output_path(out, force=force)
    if out.exists() and out.resolve() == src.resolve():
        raise InputError("The output would overwrite the input.", hint="Choose another -o path.")
    input_bytes = src.stat().st_size

    start = time.perf_counter()
    with atomic_output(out, force=force) as tmp:  # fails first on a read-only folder
        _check_disk_space(out, n_params, qt, input_bytes)
        job = {"input": str(src), "output": str(tmp), "parent_pid": os.getpid(),
               "ftype": qt.ftype, "only_copy": qt.only_copy,
               "nthread": n_threads or 0, "keep_output_f16": keep_output_f16,
               "imatrix": str(imatrix) if imatrix is not None else None}
        error = _run_worker(job, on_tensor)
        if error is not None:
            raise _explain(error, out)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise QuantizeError("libllama reported success but wrote nothing.")
        _keep_umask_mode(tmp)
    seconds = time.perf_counter() - start

    try:
        result = open_reader(out)
        histogram = Counter(t.tensor_type.name for t in result.tensors)
        out_params, out_tensor_bytes, _ = tensor_stats(result)
    except UnknownTensorTypeError:  # e.g. Q2_0: llama.cpp reads it, gguf-py 0.19 does not
        histogram, out_params, out_tensor_bytes = Counter(), n_params, out.stat().st_size
    return QuantizeReport(
        input=src, output=out, qtype=qt.name, input_bytes=input_bytes,
        output_bytes=out.stat().st_size, n_params=out_params,
        bits_per_weight=8.0 * out_tensor_bytes / out_params if out_params else 0.0,
        seconds=seconds, type_histogram=dict(histogram.most_common()),
        input_bits_per_weight=8.0 * input_tensor_bytes / n_params if n_params else 0.0,
    )


def _keep_umask_mode(path: Path) -> None:
    """mkstemp makes 0600 files; give the result the mode a normal file would get."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
