"""lamina convert (merge + GGUF in one streamed pass) vs the seed projects' two-step path.

Baseline, as the Chinese-LLaMA/Alpaca instructions do it:
  1. peft: load the base in f16, ``PeftModel.from_pretrained(...).merge_and_unload()``,
     ``save_pretrained`` (safetensors);
  2. llama.cpp's ``convert_hf_to_gguf.py`` (from the llama.cpp vendored in the
     llama-cpp-python 0.3.36 sdist) on the merged folder, ``--outtype f16``.
Both run in child processes; wall time and peak RSS (ru_maxrss) of each are
measured, on the >= 1 GB synthetic model of ``bigmodel.py`` with an all-linear
LoRA. The two GGUFs are compared tensor by tensor as a correctness check.

With ``--family qwen2`` the model is Qwen2-shaped (~1.0 GiB f16, Qwen's real
151,936-row vocabulary and tokenizer, tied embeddings, q/k/v biases) with the
same all-linear LoRA; the seed path is the same two steps (llama.cpp's converter
recognises this tokenizer as Qwen2's by its hash).

    python benchmarks/convert.py [--family llama|qwen2] [--keep]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bigmodel import SDIST_VERSION, ensure_big_model, ensure_seed_converter, model_bytes  # noqa: E402
from common import WORK, print_table, run_measured, save_result, warm_cache  # noqa: E402

SEED_MERGE = r"""
import shutil, sys
from pathlib import Path
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
base, lora, out = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float16, low_cpu_mem_usage=True)
model = PeftModel.from_pretrained(model, lora).merge_and_unload()
model.save_pretrained(out, safe_serialization=True)
for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json"):
    if (Path(base) / name).is_file():
        shutil.copyfile(Path(base) / name, Path(out) / name)
"""


def compare_ggufs(a: Path, b: Path) -> float:
    """Largest |difference| between same-named tensors of two GGUF files."""
    import numpy as np
    from gguf import GGUFReader

    ta = {t.name: t for t in GGUFReader(a).tensors}
    tb = {t.name: t for t in GGUFReader(b).tensors}
    if ta.keys() != tb.keys():
        raise SystemExit(f"tensor names differ: {sorted(ta.keys() ^ tb.keys())[:5]}")
    worst = 0.0
    for name, t in ta.items():
        x = np.asarray(t.data, dtype=np.float32)
        y = np.asarray(tb[name].data, dtype=np.float32)
        worst = max(worst, float(np.abs(x - y).max()))
    return worst


def main() -> None:
    keep = "--keep" in sys.argv
    family = sys.argv[sys.argv.index("--family") + 1] if "--family" in sys.argv else "llama"
    if family not in ("llama", "qwen2"):
        raise SystemExit(f"--family is llama or qwen2, not {family!r}")
    work = WORK / ("convert" if family == "llama" else f"convert-{family}")
    work.mkdir(parents=True, exist_ok=True)
    base, lora = ensure_big_model(WORK, family)
    size = model_bytes(base)
    script = ensure_seed_converter(WORK)

    lamina_out = work / "lamina.f16.gguf"
    seed_merged = work / "seed_merged_hf"
    seed_out = work / "seed.f16.gguf"
    for p in (lamina_out, seed_out):
        p.unlink(missing_ok=True)
    shutil.rmtree(seed_merged, ignore_errors=True)

    warm_cache(base, lora)
    lam = run_measured([sys.executable, "-m", "lamina", "convert", str(base), "--lora", str(lora),
                        "--outtype", "f16", "-o", str(lamina_out), "--json"])
    if lam.returncode != 0:
        raise SystemExit(f"lamina convert failed:\n{lam.stderr[-2000:]}")
    warm_cache(base, lora)
    merge = run_measured([sys.executable, "-c", SEED_MERGE, str(base), str(lora), str(seed_merged)])
    if merge.returncode != 0:
        raise SystemExit(f"seed merge failed:\n{merge.stderr[-2000:]}")
    warm_cache(seed_merged)
    conv = run_measured([sys.executable, str(script), str(seed_merged), "--outtype", "f16",
                         "--outfile", str(seed_out)], cwd=script.parent)
    if conv.returncode != 0:
        raise SystemExit(f"convert_hf_to_gguf.py failed:\n{conv.stderr[-2000:]}")
    max_diff = compare_ggufs(lamina_out, seed_out)

    seed_s = merge.seconds + conv.seconds
    seed_rss = max(merge.peak_rss_bytes, conv.peak_rss_bytes)
    gb = 1024**3

    def row(name: str, s: float, rss: int, ratio: str) -> list[str]:
        return [name, f"{s:.1f}", f"{rss / 2**20:.0f}", f"{100 * rss / size:.0f}%", ratio]

    columns = ["path", "wall s", "peak RSS MiB", "RSS / model size", "speed vs seed path"]
    rows = [
        row("lamina convert --lora (one pass)", lam.seconds, lam.peak_rss_bytes,
            f"{seed_s / lam.seconds:.1f}x faster"),
        row("seed 1: peft merge_and_unload + save_pretrained", merge.seconds,
            merge.peak_rss_bytes, ""),
        row("seed 2: convert_hf_to_gguf.py --outtype f16", conv.seconds, conv.peak_rss_bytes, ""),
        row("seed path total", seed_s, seed_rss, "1.0x"),
    ]
    shape = "LLaMA" if family == "llama" else "Qwen2 (151,936-row vocabulary, tied, biases)"
    title = (f"Convert + merge a {size / gb:.2f} GiB f16 {shape} (sharded) with a rank-16 LoRA "
             "to f16 GGUF")
    print_table(title, columns, rows)
    notes = ("Inputs are read once before each run (hot page cache for both paths). "
             f"Max |difference| between the two GGUFs' tensors: {max_diff:.2e} "
             "(f16 rounding of the merged weights). Seed converter: convert_hf_to_gguf.py with "
             f"the gguf-py vendored next to it in the llama-cpp-python {SDIST_VERSION} sdist "
             "(the venv's gguf 0.19 is too old for that script).")
    print(notes)
    save_result("convert" if family == "llama" else f"convert_{family}", title, columns, rows, notes=notes, extra={
        "model_bytes": size, "max_abs_diff": max_diff,
        "lamina": {"s": lam.seconds, "rss": lam.peak_rss_bytes},
        "seed_merge": {"s": merge.seconds, "rss": merge.peak_rss_bytes},
        "seed_convert": {"s": conv.seconds, "rss": conv.peak_rss_bytes},
        "lamina_report": json.loads(lam.stdout.strip().splitlines()[-1]),
    })
    if not keep:
        for p in (lamina_out, seed_out):
            p.unlink(missing_ok=True)
        shutil.rmtree(seed_merged, ignore_errors=True)


if __name__ == "__main__":
    main()
