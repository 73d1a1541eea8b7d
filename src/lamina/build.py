"""``lamina build``: checkpoint (+ LoRAs / diff) -> quantized GGUF in one command.

Two stages, each the same code as its own command: ``lamina convert`` writes an
intermediate float GGUF into a private temporary folder, ``lamina quantize``
turns it into the requested type, and (unless switched off) ``lamina verify``
compares the result with the intermediate on the built-in text. The temporary
folder lives next to the output (same disk, no 13 GB surprise in /tmp) and is
removed whatever happens: success, error or Ctrl-C. Only a SIGKILL (or a power
cut) can leave it behind; its name carries the process id
(``.OUT.gguf.<pid>-<host>-<random>.build``), and the next build of the same
output removes such folders, and the output's own ``.part`` leftovers, of
processes that are gone (``lamina.files.remove_leftovers``).

When the machine has RAM to spare (``/dev/shm`` and MemAvailable both well
above the intermediate's size), the intermediate goes to ``/dev/shm`` instead:
it is read back once by the quantizer and deleted, so writing it to disk is
pure wear and I/O time. On a laptop where a 13 GB f16 would not fit in RAM,
it stays on disk next to the output.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina.errors import InputError
from lamina.files import check_output_path, make_temp, remove_leftovers
from lamina.progress import TaskProgress
from lamina.quantize.quality import QualityReport
from lamina.quantize.quantizer import QuantizeReport, TensorCallback, quantize
from lamina.quantize.types import get_quant_type

INTERMEDIATE_TYPES = ("f16", "f32", "bf16")


@dataclass
class BuildOptions:
    base: Path
    output: Path
    qtype: str = "Q4_K_M"
    loras: list[Path] = field(default_factory=list)
    diff: Path | None = None
    tokenizer: Path | None = None
    template: str | None = None
    intermediate: str = "f16"  # float type of the temporary GGUF (llama.cpp's usual path)
    n_threads: int | None = None
    imatrix: Path | None = None
    keep_output_f16: bool = False
    verify: bool = True
    force: bool = False
    tmp_dir: Path | None = None  # where the temporary folder goes (default: RAM or next to output)
    model_name: str | None = None  # general.name (default: convert's rule, plan.model_name)


@dataclass
class BuildReport:
    output: Path
    qtype: str
    input_bytes: int  # the checkpoint files read (base + adapters + diff)
    intermediate_bytes: int
    output_bytes: int
    n_params: int
    bits_per_weight: float
    stage_seconds: dict[str, float]  # convert / quantize / verify
    quantize: QuantizeReport
    quality: QualityReport | None = None
    intermediate_dir: str = ""  # where the (removed) intermediate was written

    def to_json(self) -> dict[str, Any]:
        return {"output": str(self.output), "type": self.qtype, "input_bytes": self.input_bytes,
                "intermediate_bytes": self.intermediate_bytes,
                "intermediate_dir": self.intermediate_dir, "output_bytes": self.output_bytes,
                "n_params": self.n_params, "bits_per_weight": round(self.bits_per_weight, 4),
                "seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "tensors": self.quantize.type_histogram,
                "quality": self.quality.to_json() if self.quality else None}


def checkpoint_bytes(paths: list[Path | None]) -> int:
    """Total size of the input folders/files (what a user downloaded)."""
    total = 0
    for p in paths:
        if p is None or not Path(p).exists():
            continue
        p = Path(p)
        files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
        total += sum(f.stat().st_size for f in files)
    return total


SHM = Path("/dev/shm")


def mem_available() -> int:
    """MemAvailable from /proc/meminfo in bytes (0 where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def temp_parent(opts: BuildOptions, out: Path) -> Path:
    """Where the temporary folder goes: --tmp-dir, else RAM when it clearly fits, else disk."""
    if opts.tmp_dir:
        return Path(opts.tmp_dir)
    estimate = checkpoint_bytes([opts.base]) * (2 if opts.intermediate == "f32" else 1)
    if SHM.is_dir() and os.access(SHM, os.W_OK) and estimate > 0:
        if shutil.disk_usage(SHM).free > 1.5 * estimate and mem_available() > 2 * estimate:
            return SHM
    return out.parent if str(out.parent) else Path(".")


def remove_build_leftovers(out: Path, parent: Path) -> None:
    """Free what killed builds of ``out`` left: work folders and the output's ``.part``.

    Done before the new work folder is made, so the space is there for it. A
    work folder may sit in RAM, next to the output or in this run's --tmp-dir
    (earlier --tmp-dir choices cannot be known); /dev/shm matters most, as a
    leftover there holds RAM until reboot.
    """
    remove_leftovers(out)
    here = out.parent if str(out.parent) else Path(".")
    for folder in dict.fromkeys([parent, SHM, here]):
        remove_leftovers(out, ".build", folder)


def run_build(opts: BuildOptions, *, convert_progress: TaskProgress | None = None,
          on_tensor: TensorCallback | None = None,
          on_stage: Callable[[str], None] | None = None,
          on_chunk: Callable[[int, int], None] | None = None) -> BuildReport:
    """Convert then quantize (then verify); see the module docstring."""
    from lamina.convert.pipeline import ConvertOptions, convert

    qt = get_quant_type(opts.qtype)  # fail on a bad type before any work
    if opts.intermediate not in INTERMEDIATE_TYPES:
        raise InputError(f"Unknown intermediate type '{opts.intermediate}'.",
                         hint=f"Choose one of: {', '.join(INTERMEDIATE_TYPES)}.")
    if qt.needs_imatrix and opts.imatrix is None:
        raise InputError(f"{qt.name} needs an importance matrix.",
                         hint="Pass --imatrix FILE, or choose another type such as Q4_K_M.")
    out = check_output_path(opts.output, force=opts.force)
    parent = temp_parent(opts, out)
    remove_build_leftovers(out, parent)
    try:
        work = make_temp(parent, out.name, ".build", folder=True)
    except OSError as exc:
        raise InputError(f"Cannot create a temporary folder in '{parent}': {exc.strerror}.",
                         hint="Choose a writable location with -o or --tmp-dir.") from exc
    seconds: dict[str, float] = {}
    try:
        if on_stage:
            on_stage("convert")
        start = time.perf_counter()
        intermediate = work / f"model-{opts.intermediate}.gguf"
        convert(ConvertOptions(base=opts.base, output=intermediate, loras=list(opts.loras),
                               diff=opts.diff, tokenizer=opts.tokenizer, template=opts.template,
                               outtype=opts.intermediate, force=True,
                               model_name=opts.model_name), progress=convert_progress)
        seconds["convert"] = time.perf_counter() - start
        intermediate_bytes = intermediate.stat().st_size

        if on_stage:
            on_stage("quantize")
        start = time.perf_counter()
        qreport = quantize(intermediate, out, qt.name, n_threads=opts.n_threads,
                           imatrix=opts.imatrix, keep_output_f16=opts.keep_output_f16,
                           force=opts.force, on_tensor=on_tensor)
        seconds["quantize"] = time.perf_counter() - start

        quality = None
        if opts.verify:
            from lamina.quantize.quality import verify

            if on_stage:
                on_stage("verify")
            start = time.perf_counter()
            quality = verify(out, intermediate, n_threads=opts.n_threads, on_chunk=on_chunk)
            seconds["verify"] = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildReport(
        output=out, qtype=qt.name,
        input_bytes=checkpoint_bytes([opts.base, *opts.loras, opts.diff]),
        intermediate_bytes=intermediate_bytes, output_bytes=qreport.output_bytes,
        n_params=qreport.n_params, bits_per_weight=qreport.bits_per_weight,
        stage_seconds=seconds, quantize=qreport, quality=quality, intermediate_dir=str(parent),
    )
