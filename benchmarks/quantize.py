"""lamina build (convert + quantize in one command) vs the seed projects' two-step path.

Seed path, as the Chinese-LLaMA/Alpaca instructions do it:
  1. llama.cpp's ``convert_hf_to_gguf.py --outtype f16`` (from the llama.cpp
     vendored in the llama-cpp-python 0.3.36 sdist, see benchmarks/convert.py);
  2. llama.cpp's quantizer on that file (``llama_model_quantize`` from the
     libllama llama-cpp-python ships, called the way ``llama-quantize`` does).
lamina: ``lamina build BASE --type Q4_K_M --no-verify`` (its f16 intermediate
lives in a temporary folder and is removed).

Each step runs in a child process; we measure wall time, peak RSS and the
bytes the child tree wrote (``/proc/self/io`` of a wrapper after it reaped the
child: ``wchar`` = bytes passed to write(), ``write_bytes`` = bytes sent to the
block layer). Also reports the size table (checkpoint -> f16 GGUF -> Q8_0 /
Q4_K_M / Q4_0) on the >= 1 GB synthetic model of ``bigmodel.py``, and checks
that lamina's Q4_K_M tensors are byte-identical to the seed path's.

    python benchmarks/quantize.py [--keep]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bigmodel import ensure_big_model, ensure_seed_converter, model_bytes  # noqa: E402
from common import (  # noqa: E402
    WORK,
    ProcResult,
    print_table,
    run_measured,
    save_result,
    warm_cache,
)

SEED_QUANTIZE = r"""
import ctypes, sys
import llama_cpp.llama_cpp as lc
lc.llama_backend_init()
params = lc.llama_model_quantize_default_params()
params.ftype = int(sys.argv[3])
rc = lc.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params))
sys.exit(rc)
"""

def run_io(cmd: list[str], cwd: Path | None = None) -> ProcResult:
    """run_measured, stopping the benchmark when a step fails."""
    result = run_measured(cmd, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{result.stderr[-3000:]}")
    return result


def same_tensor_bytes(a: Path, b: Path) -> tuple[int, int]:
    """(tensors with identical type and bytes, tensors) between two GGUFs."""
    import numpy as np
    from gguf import GGUFReader

    ta = {t.name: t for t in GGUFReader(a).tensors}
    tb = {t.name: t for t in GGUFReader(b).tensors}
    same = sum(1 for name, t in ta.items() if name in tb
               and t.tensor_type == tb[name].tensor_type
               and np.array_equal(np.asarray(t.data).view(np.uint8),
                                  np.asarray(tb[name].data).view(np.uint8)))
    return same, len(ta)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> None:
    from lamina.quantize.types import get_quant_type

    keep = "--keep" in sys.argv
    work = WORK / "quantize"
    work.mkdir(parents=True, exist_ok=True)
    base, _lora = ensure_big_model(WORK)
    size = model_bytes(base)
    script = ensure_seed_converter(WORK)
    seed_f16 = work / "seed.f16.gguf"
    seed_q = work / "seed.Q4_K_M.gguf"
    lamina_q = work / "lamina.Q4_K_M.gguf"
    for p in work.glob("*.gguf"):
        p.unlink()

    warm_cache(base)
    lam = run_io([sys.executable, "-m", "lamina", "build", str(base), "--type", "Q4_K_M",
                  "--no-verify", "-o", str(lamina_q), "--json"])
    warm_cache(base)
    conv = run_io([sys.executable, str(script), str(base), "--outtype", "f16", "--outfile",
                   str(seed_f16)], cwd=script.parent)
    quant = run_io([sys.executable, "-c", SEED_QUANTIZE, str(seed_f16), str(seed_q),
                    str(get_quant_type("Q4_K_M").ftype)])
    same, total = same_tensor_bytes(lamina_q, seed_q)

    # Size table: the other common types, quantized from the seed's f16 file.
    sizes = {"f16 GGUF": seed_f16.stat().st_size, "Q4_K_M": lamina_q.stat().st_size}
    for qtype in ("Q8_0", "Q4_0"):
        out = work / f"seed.{qtype}.gguf"
        run_io([sys.executable, "-c", SEED_QUANTIZE, str(seed_f16), str(out),
                str(get_quant_type(qtype).ftype)])
        sizes[qtype] = out.stat().st_size
        out.unlink()

    seed_s = conv.seconds + quant.seconds
    seed_w = conv.wchar + quant.wchar
    seed_wb = conv.write_bytes + quant.write_bytes
    columns = ["path", "wall s", "peak RSS MiB", "written MiB (all write() calls)",
               "written MiB (to disk)", "vs seed path"]
    rows = [
        ["lamina build --type Q4_K_M", f"{lam.seconds:.1f}", mib(lam.peak_rss_bytes), mib(lam.wchar),
         mib(lam.write_bytes), f"{seed_s / lam.seconds:.2f}x faster, "
                               f"{seed_wb / max(lam.write_bytes, 1):.1f}x fewer disk bytes"],
        ["seed 1: convert_hf_to_gguf.py --outtype f16", f"{conv.seconds:.1f}",
         mib(conv.peak_rss_bytes), mib(conv.wchar), mib(conv.write_bytes), ""],
        ["seed 2: llama_model_quantize Q4_K_M", f"{quant.seconds:.1f}", mib(quant.peak_rss_bytes),
         mib(quant.wchar), mib(quant.write_bytes), ""],
        ["seed path total", f"{seed_s:.1f}", mib(max(conv.peak_rss_bytes, quant.peak_rss_bytes)),
         mib(seed_w), mib(seed_wb), "1.00x"],
    ]
    gb = 1024**3
    title = f"Build a Q4_K_M GGUF from a {size / gb:.2f} GiB f16 LLaMA checkpoint (HF, sharded)"
    print_table(title, columns, rows)

    lam_report = json.loads(lam.stdout)
    params = lam_report["n_params"]
    size_rows = [["HF checkpoint (safetensors f16)", f"{size / gb:.2f}", f"{8 * size / params:.2f}",
                  "1.00"]]
    for name, nbytes in sizes.items():
        size_rows.append([name, f"{nbytes / gb:.2f}", f"{8 * nbytes / params:.2f}",
                          f"{nbytes / size:.2f}"])
    size_title = f"Sizes ({params / 1e6:.0f} M parameters)"
    print_table(size_title, ["file", "GiB", "bits/weight", "vs checkpoint"], size_rows)
    notes = (f"Both paths start with a hot page cache. lamina's Q4_K_M and the seed path's have "
             f"{same}/{total} tensors byte-identical (metadata differs: tokenizer/provenance "
             "keys). 'all write() calls' counts every byte each path wrote, including the "
             "f16 intermediate; 'to disk' is /proc io write_bytes (block layer). lamina put "
             f"its intermediate in {lam_report['intermediate_dir']} (RAM when it clearly fits, "
             "else next to the output) and deleted it. Seed quantize = llama_model_quantize "
             "with llama-quantize's defaults. Shared 2-core machine: absolute times are noisy.")
    print(notes)
    save_result("quantize", title, columns, rows, notes=notes, extra={
        "model_bytes": size, "n_params": params, "sizes": sizes,
        "size_table": {"columns": ["file", "GiB", "bits/weight", "vs checkpoint"],
                       "rows": size_rows},
        "identical_tensors": [same, total],
        "lamina": vars(lam) | {"stdout": None},
        "seed_convert": vars(conv) | {"stdout": None},
        "seed_quantize": vars(quant) | {"stdout": None},
    })
    if not keep:
        for p in work.glob("*.gguf"):
            p.unlink()
    os.sync()


if __name__ == "__main__":
    main()
