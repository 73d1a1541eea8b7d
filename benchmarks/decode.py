"""lamina generation speed vs a plain llama-cpp-python low-level loop, and start-up costs.

Same Q4_K_M GGUF (the synthetic ~136M-parameter LLaMA with a 32000 vocabulary that
benchmarks/engine.py builds), same threads, same context, greedy decoding:

* baseline: llama_batch_get_one + llama_decode for the prompt, then a loop of
  llama_sampler_sample (greedy chain) + llama_token_to_piece + llama_decode:
  the shortest loop one can write with llama-cpp-python's low-level API;
* lamina: ``Model.generate(prompt, SamplingParams.greedy(N))`` with a cold KV cache.

Prompt processing and decoding are timed separately (decode time for lamina is the
wall time of the call minus its prompt time, so it includes sampler set-up, stop
and UTF-8 handling). Runs alternate between the two to share the machine's noise;
the median of the repeats is reported. Also: ``import lamina`` time, and
``lamina chat`` start-up time to its first prompt in a pseudo-terminal.

    python benchmarks/decode.py [--threads 1] [--prompt-tokens 256] [--tokens 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORK, print_table, save_result  # noqa: E402

PROMPT_TEXT = "北京是中国的首都，也是一座有三千多年历史的文化名城。"


def baseline_run(llm: Any, tokens: list[int], n_gen: int) -> tuple[float, float, int]:
    """(prompt seconds, decode seconds, tokens generated) for the plain low-level loop."""
    import llama_cpp as lib

    ctx = llm._ctx.ctx
    vocab = lib.llama_model_get_vocab(llm._model.model)
    lib.llama_memory_clear(lib.llama_get_memory(ctx), True)
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
    buf = ctypes.create_string_buffer(64)
    t0 = time.perf_counter()
    for i in range(0, len(tokens), llm.n_batch):
        chunk = tokens[i:i + llm.n_batch]
        arr = (lib.llama_token * len(chunk))(*chunk)
        assert lib.llama_decode(ctx, lib.llama_batch_get_one(arr, len(chunk))) == 0
    t1 = time.perf_counter()
    out = bytearray()
    one = (lib.llama_token * 1)()
    n = 0
    for _ in range(n_gen):
        tok = lib.llama_sampler_sample(chain, ctx, -1)
        if lib.llama_vocab_is_eog(vocab, tok):
            break
        k = lib.llama_token_to_piece(vocab, tok, buf, 64, 0, False)
        out += buf.raw[:k]
        one[0] = tok
        assert lib.llama_decode(ctx, lib.llama_batch_get_one(one, 1)) == 0
        n += 1
    out.decode("utf-8", errors="replace")
    t2 = time.perf_counter()
    lib.llama_sampler_free(chain)
    return t1 - t0, t2 - t1, n


def lamina_run(model: Any, tokens: list[int], n_gen: int) -> tuple[float, float, int]:
    from lamina.runtime.sampling import SamplingParams

    model.reset_cache()
    t0 = time.perf_counter()
    model.generate(tokens, SamplingParams.greedy(n_gen))
    wall = time.perf_counter() - t0
    st = model.last_stats
    assert st.cached_tokens == 0 and st.evaluated_tokens == len(tokens)
    return st.prompt_seconds, wall - st.prompt_seconds, st.completion_tokens


def import_time(repeats: int = 5) -> float:
    code = "import time; t=time.perf_counter(); import lamina; print(time.perf_counter()-t)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, check=True).stdout) for _ in range(repeats))


def chat_startup(path: Path, threads: int, repeats: int = 3) -> tuple[float, float]:
    """Seconds from launching `lamina chat` to its '>>> ' prompt (median), and for comparison
    from launching python to a loaded llama_cpp.Llama (median)."""
    import pexpect

    env = {**os.environ, "TERM": "xterm", "LAMINA_HISTORY": str(WORK / "decode-history")}
    chat, plain = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        child = pexpect.spawn(sys.executable, ["-m", "lamina", "chat", str(path), "--threads",
                                               str(threads)], env=env, encoding="utf-8",
                              timeout=120, dimensions=(40, 100))
        child.expect_exact(">>> ")
        chat.append(time.perf_counter() - t)
        child.sendline("/exit")
        child.expect(pexpect.EOF)
        code = (f"import llama_cpp; llama_cpp.Llama({str(path)!r}, n_ctx=2048, "
                f"n_threads={threads}, verbose=False)")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        plain.append(time.perf_counter() - t)
    return statistics.median(chat), statistics.median(plain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for both (1 is the least noisy on a shared machine)")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=128, help="tokens to generate per run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from engine import ENGINE_SPEC, ensure_model, n_params

    import lamina

    path = ensure_model(WORK)
    n_ctx = 2048
    model = lamina.load(path, n_ctx=n_ctx, n_threads=args.threads)
    import llama_cpp

    plain = llama_cpp.Llama(str(path), n_ctx=n_ctx, n_threads=args.threads,
                            n_threads_batch=args.threads, n_batch=model.n_batch, verbose=False)
    base = model.tokenize(PROMPT_TEXT, add_bos=False)
    tokens = ([model.llama.token_bos()] + base * (args.prompt_tokens // len(base) + 1))[
        : args.prompt_tokens]

    # warm-up both (page in weights, allocate graphs)
    baseline_run(plain, tokens, 8)
    lamina_run(model, tokens, 8)
    b_pp, b_dec, l_pp, l_dec = [], [], [], []
    for _ in range(args.repeats):
        p, d, n = baseline_run(plain, tokens, args.tokens)
        b_pp.append(len(tokens) / p)
        b_dec.append(n / d)
        p, d, n = lamina_run(model, tokens, args.tokens)
        l_pp.append(len(tokens) / p)
        l_dec.append(n / d)
    plain.close()
    model.close()
    bp, bd = statistics.median(b_pp), statistics.median(b_dec)
    lp, ld = statistics.median(l_pp), statistics.median(l_dec)
    # ratios of back-to-back pairs share the machine's momentary load
    rp = statistics.median(lam / pl for lam, pl in zip(l_pp, b_pp, strict=True))
    rd = statistics.median(lam / pl for lam, pl in zip(l_dec, b_dec, strict=True))
    imp = import_time()
    chat_s, plain_load_s = chat_startup(path, args.threads)

    title = (f"Generation speed, Q4_K_M synthetic LLaMA {n_params(ENGINE_SPEC) / 1e6:.0f}M, "
             f"{args.threads} threads, prompt {len(tokens)} tokens, {args.tokens} generated, "
             f"median of {args.repeats} alternating runs")
    columns = ["measure", "plain llama-cpp-python loop", "lamina", "lamina / plain"]
    rows = [
        ["prompt processing (tokens/s)", f"{bp:.1f}", f"{lp:.1f}", f"{rp:.3f}x"],
        ["decode (tokens/s)", f"{bd:.1f}", f"{ld:.1f}", f"{rd:.3f}x"],
        ["start-up to first prompt (s)", f"{plain_load_s:.2f} (python + Llama() load)",
         f"{chat_s:.2f} (`lamina chat`)", f"{chat_s / plain_load_s:.2f}x"],
        ["`import lamina` (s)", "-", f"{imp:.3f}", "target < 0.3 s"],
    ]
    print_table(title, columns, rows)
    save_result("decode", title, columns, rows,
                notes="Decode target: lamina >= 0.97x the plain loop. Ratios are medians of "
                      "back-to-back pairs.",
                extra={"prompt_tps": {"plain": b_pp, "lamina": l_pp},
                       "decode_tps": {"plain": b_dec, "lamina": l_dec},
                       "chat_startup_s": chat_s, "import_s": imp})


if __name__ == "__main__":
    main()
