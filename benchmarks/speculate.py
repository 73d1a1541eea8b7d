"""Can the batch engine decode more than one token per sequence per step, and keep
every greedy answer? (grammar fast-forward and prompt-lookup drafts, issue 20)

The engine's promise (docs/engine.md, "Same answers whatever the batch") is that a
greedy answer equals a one-token-at-a-time llama.cpp loop's, bit for bit. Speculative
decoding feeds several tokens of one sequence in one ``llama_decode`` (a forced run
of the grammar, or a draft copied from the document) and keeps the prefix greedy
would have chosen. That is only exact if a row's logits do not depend on how many
rows of its own sequence share the call. This script measures, on the real GGUF
files of the test tier and on the Chinese-LLaMA-shaped benchmark model:

* **rows bit-identical, k tokens of one sequence per call**: 4 prompts, 24 greedy
  tokens each, fed 2, 4 or 7 per call (every row's logits kept) vs one per call;
* **rows bit-identical, 4 sequences x 1 token per call**: the engine's own step, the
  control;
* **7-row call, cost per row**: one 7-row call of one sequence (all logits) over a
  1-row call: what a fully accepted 6-token draft costs per token;
* **grammar-forced tokens**: answer tokens at which the grammar allows exactly one
  token of the vocabulary (what fast-forward could append without the model);
* **answers identical**: greedy + grammar with prompt-lookup drafts (the continuation
  of the longest 1-4-token match of the answer's tail in the prompt and answer, at most
  6 tokens, so a call stays under the 8-row K-quant threshold), verified in one call
  and cut at the first token greedy would not have chosen, vs the plain loop (both
  with lamina's sampler; the plain loop's tokens are checked against the engine's);
* decode calls and time of the two loops (one sequence: where drafts help most).

    python benchmarks/speculate.py [--docs 30] [--max-tokens 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import WORK, print_table, save_result  # noqa: E402

#: Longest draft: a verifying call then has at most 7 rows (K-quant dot-product class).
MAX_DRAFT = 6
#: Longest tail of the answer looked up in the prompt and the answer so far.
MAX_NGRAM = 4
#: Tokens per sequence in the logit-identity check, and the call widths tried.
IDENTITY_TOKENS = 24
WIDTHS = (2, 4, 7)

Item = tuple[int, int, int, bool]  # token, position, sequence, logits wanted


class Decoder:
    """Contexts on one loaded lamina model, set up as its plain loop sets its own
    (flash attention off, n_batch-sized prompt chunks, the model's threads)."""

    def __init__(self, model: Any) -> None:
        import llama_cpp as lib

        self.lib = lib
        self.model = model
        self.handle = model.llama._model.model
        self.vocab = lib.llama_model_get_vocab(self.handle)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.n_batch = int(model.n_batch)
        self.batch = lib.llama_batch_init(512, 0, 1)

    def context(self, n_seq: int = 1, n_ctx: int = 2048) -> Any:
        cp = self.lib.llama_context_default_params()
        cp.n_ctx = n_ctx * n_seq
        cp.n_batch = cp.n_ubatch = max(self.n_batch, n_seq)
        cp.n_seq_max = n_seq
        cp.kv_unified = False
        cp.n_threads = cp.n_threads_batch = int(self.model.n_threads)
        cp.flash_attn_type = 0
        ctx = self.lib.llama_init_from_model(self.handle, cp)
        assert ctx, "llama.cpp could not create a context"
        return ctx

    def decode(self, ctx: Any, items: Sequence[Item]) -> None:
        b = self.batch
        for i, (tok, pos, seq, logits) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, int(logits)
            b.seq_id[i][0] = seq
        b.n_tokens = len(items)
        rc = self.lib.llama_decode(ctx, b)
        assert rc == 0, f"llama_decode failed ({rc})"

    def prompt(self, ctx: Any, tokens: Sequence[int], seq: int = 0) -> None:
        """Evaluate a prompt as the plain loop does: n_batch chunks, logits of the last token."""
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            self.decode(ctx, [(t, start + i, seq, start + i == len(tokens) - 1)
                              for i, t in enumerate(chunk)])

    def row(self, ctx: Any, i: int) -> np.ndarray:
        ptr = self.lib.llama_get_logits_ith(ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def free(self, ctx: Any) -> None:
        self.lib.llama_free(ctx)

    @staticmethod
    def address(ptr: Any) -> int:
        return int(ctypes.cast(ptr, ctypes.c_void_p).value or 0)


# ---------------------------------------------------------------- logits


def plain_rows(dec: Decoder, prompt: list[int]) -> tuple[list[int], list[np.ndarray]]:
    """Greedy tokens one per call and the logits row that chose each next token."""
    ctx = dec.context()
    try:
        dec.prompt(ctx, prompt)
        rows = [dec.row(ctx, -1)]
        tokens: list[int] = []
        for k in range(IDENTITY_TOKENS):
            tokens.append(int(np.argmax(rows[-1])))
            dec.decode(ctx, [(tokens[-1], len(prompt) + k, 0, True)])
            rows.append(dec.row(ctx, 0))
        return tokens, rows[1:]
    finally:
        dec.free(ctx)


def rows_in_calls_of(dec: Decoder, prompt: list[int], tokens: list[int], width: int,
                     ) -> list[np.ndarray]:
    """The same tokens fed ``width`` per call, every row's logits kept."""
    ctx = dec.context()
    try:
        dec.prompt(ctx, prompt)
        out = []
        for k0 in range(0, len(tokens), width):
            part = tokens[k0:k0 + width]
            dec.decode(ctx, [(t, len(prompt) + k0 + j, 0, True) for j, t in enumerate(part)])
            out += [dec.row(ctx, j) for j in range(len(part))]
        return out
    finally:
        dec.free(ctx)


def rows_across_sequences(dec: Decoder, prompts: list[list[int]], tokens: list[list[int]],
                          ) -> list[list[np.ndarray]]:
    """Every sequence's tokens one per call, all sequences in the same call (the engine's step)."""
    ctx = dec.context(n_seq=len(prompts))
    try:
        for s, p in enumerate(prompts):
            dec.prompt(ctx, p, seq=s)
        out: list[list[np.ndarray]] = [[] for _ in prompts]
        for k in range(IDENTITY_TOKENS):
            dec.decode(ctx, [(tokens[s][k], len(p) + k, s, True) for s, p in enumerate(prompts)])
            for s in range(len(prompts)):
                out[s].append(dec.row(ctx, s))
        return out
    finally:
        dec.free(ctx)


def same_rows(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    return sum(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def row_cost(dec: Decoder, prompt: list[int], reps: int = 9) -> float:
    """Seconds per row of a 7-row call of one sequence over the seconds of a 1-row call
    (the two alternate, and the fastest of each counts: a shared machine only adds time)."""
    ctx = dec.context()
    mem = dec.lib.llama_get_memory(ctx)
    try:
        dec.prompt(ctx, prompt)
        n = len(prompt)
        best = {1: float("inf"), 7: float("inf")}
        for _ in range(reps):
            for width in best:
                dec.lib.llama_memory_seq_rm(mem, 0, n, -1)
                t0 = time.perf_counter()
                dec.decode(ctx, [(prompt[-1 - j], n + j, 0, True) for j in range(width)])
                best[width] = min(best[width], time.perf_counter() - t0)
        return best[7] / 7 / best[1]
    finally:
        dec.free(ctx)


# ---------------------------------------------------------------- greedy loops


def lookup_draft(history: list[int], n_max: int) -> list[int]:
    """Prompt lookup: what followed the latest earlier occurrence of the longest tail
    (MAX_NGRAM tokens down to 1) of ``history`` (prompt + answer so far)."""
    for n in range(MAX_NGRAM, 0, -1):
        if len(history) <= n:
            continue
        tail = history[-n:]
        for j in range(len(history) - n - 1, -1, -1):
            if history[j:j + n] == tail:
                return history[j + n:j + n + n_max]
    return []


@dataclass
class Loop:
    tokens: list[int]
    calls: int
    accepted: int
    seconds: float


def greedy_loop(dec: Decoder, new_sampler: Callable[[], Any], prompt: list[int],
                max_tokens: int, drafts: bool) -> Loop:
    """Greedy + grammar on one sequence; with ``drafts``, each call feeds the last
    token and a lookup draft and keeps the draft while greedy agrees with it."""
    lib = dec.lib
    ctx = dec.context()
    mem = lib.llama_get_memory(ctx)
    cptr = dec.address(ctx)
    sampler = new_sampler()
    t0 = time.perf_counter()
    try:
        dec.prompt(ctx, prompt)
        pos, calls, accepted = len(prompt), 0, 0
        out: list[int] = []
        tok = sampler.sample(cptr, -1)
        while not lib.llama_vocab_is_eog(dec.vocab, tok):
            out.append(tok)
            if len(out) >= max_tokens:
                break
            draft = lookup_draft(prompt + out, min(MAX_DRAFT, max_tokens - len(out) - 1)) \
                if drafts else []
            dec.decode(ctx, [(t, pos + j, 0, True) for j, t in enumerate([tok, *draft])])
            calls += 1
            kept = 0
            for j in range(len(draft) + 1):
                tok = sampler.sample(cptr, j)
                if j == len(draft) or tok != draft[j] or lib.llama_vocab_is_eog(dec.vocab, tok):
                    break
                out.append(tok)
                kept += 1
            accepted += kept
            pos += 1 + kept
            if kept < len(draft):  # the rejected draft's cells go
                lib.llama_memory_seq_rm(mem, 0, pos, -1)
        return Loop(out[:max_tokens], calls, accepted, time.perf_counter() - t0)
    finally:
        dec.free(ctx)


def forced_tokens(dec: Decoder, grammar: str, tokens: list[int]) -> int:
    """Answer positions at which the grammar allows exactly one vocabulary token."""
    lib = dec.lib
    g = lib.llama_sampler_init_grammar(dec.vocab, grammar.encode("utf-8"), b"root")
    kind = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
    cand = np.zeros(dec.n_vocab, dtype=kind)
    ids = np.arange(dec.n_vocab, dtype=np.int32)
    forced = 0
    try:
        for tok in tokens:
            cand["id"], cand["logit"] = ids, 0.0
            data = cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
            arr = lib.llama_token_data_array(data, dec.n_vocab, -1, False)
            lib.llama_sampler_apply(g, ctypes.byref(arr))
            forced += int(np.count_nonzero(np.isfinite(cand["logit"]))) == 1
            lib.llama_sampler_accept(g, tok)
    finally:
        lib.llama_sampler_free(g)
    return forced


# ---------------------------------------------------------------- one model


def measure(label: str, path: Path, texts: list[str], schema: list[str], limits: Any,
            args: argparse.Namespace) -> list[str]:
    import lamina
    from lamina import _native
    from lamina.ie.api import Extractor
    from lamina.runtime.engine import complete_many
    from lamina.runtime.sampling import SamplingParams, native_config

    model = lamina.load(path, n_ctx=2048, n_threads=args.threads)
    try:
        dec = Decoder(model)
        ex = Extractor(model, task="NER", schema=schema, limits=limits)
        jobs = [ex.job(t) for t in texts]
        prompts = [model.tokenize(j.prompts[0]) for j in jobs]
        grammars = [j.grammars[0] or "" for j in jobs]
        params = SamplingParams.greedy(max_tokens=args.max_tokens)
        config = native_config(_native, params)
        vocab = dec.address(dec.vocab)

        # 1. logits of k tokens of one sequence per call, and of 4 sequences x 1 token
        four = prompts[:4]
        plain = [plain_rows(dec, p) for p in four]
        multi_same = multi_total = 0
        for width in WIDTHS:
            for p, (toks, rows) in zip(four, plain, strict=True):
                multi_same += same_rows(rows_in_calls_of(dec, p, toks, width), rows)
                multi_total += len(rows)
        across = rows_across_sequences(dec, four, [t for t, _ in plain])
        seq_same = sum(same_rows(a, rows) for a, (_, rows) in zip(across, plain, strict=True))
        seq_total = sum(len(rows) for _, rows in plain)
        cost = row_cost(dec, prompts[0])

        # 2. greedy + grammar with and without drafts, one sequence
        engine = dict(complete_many(model, [j.prompts[0] for j in jobs], params, grammars,
                                    n_seq=4))
        same = control = forced = n_tokens = accepted = 0
        calls = {True: 0, False: 0}
        seconds = {True: 0.0, False: 0.0}
        for i, (p, g) in enumerate(zip(prompts, grammars, strict=True)):
            runs = {}
            for drafts in (False, True) if i % 2 == 0 else (True, False):
                runs[drafts] = greedy_loop(dec, lambda g=g: _native.Sampler(vocab, config, g),
                                           p, args.max_tokens, drafts)
                calls[drafts] += runs[drafts].calls
                seconds[drafts] += runs[drafts].seconds
            base = runs[False].tokens
            control += base == engine[i].tokens
            same += runs[True].tokens == base
            accepted += runs[True].accepted
            n_tokens += len(base)
            forced += forced_tokens(dec, g, base)
            print(f"{label} doc {i + 1}: {'same' if runs[True].tokens == base else 'DIFFERENT'}",
                  file=sys.stderr)
        n = len(texts)
        return [label,
                f"{multi_same}/{multi_total}",
                f"{seq_same}/{seq_total}",
                f"{cost:.2f}x",
                f"{forced}/{n_tokens} ({100 * forced / max(1, n_tokens):.0f}%)",
                f"{accepted}/{n_tokens} ({100 * accepted / max(1, n_tokens):.0f}%)",
                f"{same}/{n}",
                f"{calls[True]} / {calls[False]}",
                f"{seconds[False] / seconds[True]:.2f}x",
                f"{control}/{n}"]
    finally:
        model.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=30)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from engine import SCHEMA as BENCH_SCHEMA
    from engine import documents, ensure_model

    from lamina.ie.grammar import GrammarLimits
    from tests.realmodels.conftest import NEWS, SCHEMA, model_file

    news = (NEWS * (args.docs // len(NEWS) + 1))[:args.docs]
    rows = []
    for name in ("gemma3", "smollm2"):
        path = model_file(name)
        rows.append(measure(path.name, path, news, SCHEMA, GrammarLimits(), args))
    bench = ensure_model(WORK)
    rows.append(measure(f"{bench.name} (random weights)", bench, documents(args.docs),
                        BENCH_SCHEMA, GrammarLimits(2, 8), args))

    title = (f"Several tokens of one sequence per llama_decode call: greedy NER, {args.docs} "
             f"documents, grammar on, max {args.max_tokens} tokens, {args.threads} threads")
    columns = ["model",
               f"rows identical, {'/'.join(map(str, WIDTHS))} tokens of a sequence per call",
               "rows identical, 4 sequences x 1 token per call",
               "7-row call: cost per row / 1-row call",
               "grammar-forced tokens",
               "draft tokens accepted",
               "answers identical with drafts",
               "decode calls, drafts / plain",
               "speed with drafts (1 sequence)",
               "plain loop = engine"]
    print_table(title, columns, rows)
    save_result("speculate", title, columns, rows,
                notes="Rows bit-identical: logits compared with a one-token-per-call loop. "
                      "Drafts: prompt lookup (longest 1-4-token tail match in prompt and "
                      f"answer, at most {MAX_DRAFT} tokens), verified in one call, cut at the "
                      "first token the grammar-constrained argmax does not confirm.",
                extra={"docs": args.docs, "max_tokens": args.max_tokens,
                       "threads": args.threads, "max_draft": MAX_DRAFT})


if __name__ == "__main__":
    main()
