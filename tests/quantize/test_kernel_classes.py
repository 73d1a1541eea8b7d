"""Which call sizes change a row's result, per weight type, and what the engine does about it.

The batch engine's exact mode rests on a table (``kernel_switch_rows``): the row
counts at which ggml multiplies a weight type with another kernel. The first test
checks that table against llama.cpp itself, logits bit for bit; the second that the
engine then decodes in calls small enough for every row to keep its one-row kernel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: weight types of the hidden-256 fixture; its 256-wide rows let K-quants stay K-quants.
TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q4_k_m", "q6_k")


@pytest.fixture(scope="module")
def typed(qfix_small, tmp_path_factory):
    from lamina.quantize.quantizer import quantize

    out = tmp_path_factory.mktemp("kernel-classes")
    cache: dict[str, Path] = {"f32": qfix_small.f32, "f16": qfix_small.f16}

    def get(qtype: str) -> Path:
        if qtype not in cache:
            cache[qtype] = out / f"{qtype}.gguf"
            quantize(qfix_small.f32, cache[qtype], qtype)
        return cache[qtype]

    return get


class _Raw:
    """A bare llama.cpp context (no repacking, as lamina loads): decode calls and
    their logits rows, nothing of lamina's in between."""

    def __init__(self, path: Path, n_seq: int) -> None:
        import llama_cpp as lc

        self.lc = lc
        params = lc.llama_model_default_params()
        params.use_extra_bufts = False
        self.model = lc.llama_model_load_from_file(str(path).encode(), params)
        cp = lc.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = 128 * n_seq, 128, 128, n_seq
        cp.n_threads = cp.n_threads_batch = 2
        cp.flash_attn_type = 0
        self.ctx = lc.llama_init_from_model(self.model, cp)
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))

    def decode(self, rows: list[tuple[int, int, int]]) -> list[np.ndarray]:
        """rows: (token, position, sequence); the logits of every row."""
        lc = self.lc
        batch = lc.llama_batch_init(len(rows), 0, 1)
        try:
            for i, (tok, pos, seq) in enumerate(rows):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
                batch.seq_id[i][0], batch.logits[i] = seq, 1
            batch.n_tokens = len(rows)
            assert lc.llama_decode(self.ctx, batch) == 0
            return [np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, i),
                                          shape=(self.n_vocab,)).copy()
                    for i in range(len(rows))]
        finally:
            lc.llama_batch_free(batch)

    def close(self) -> None:
        self.lc.llama_free(self.ctx)
        self.lc.llama_model_free(self.model)


def _rows_identical(path: Path, n_rows: int, steps: int = 3) -> bool:
    """Do ``n_rows`` sequences decoded in one call get the logits each gets alone?"""
    rng = np.random.default_rng(n_rows)
    together, alone = _Raw(path, n_rows), [_Raw(path, 1) for _ in range(n_rows)]
    try:
        prompts = [[int(t) for t in rng.integers(3, together.n_vocab, 5 + 3 * s)]
                   for s in range(n_rows)]
        for s, prompt in enumerate(prompts):  # each prompt in a call of its own, both ways
            together.decode([(t, i, s) for i, t in enumerate(prompt)])
            alone[s].decode([(t, i, 0) for i, t in enumerate(prompt)])
        same = True
        for _ in range(steps):
            nxt = [int(t) for t in rng.integers(3, together.n_vocab, n_rows)]
            rows = together.decode([(nxt[s], len(prompts[s]), s) for s in range(n_rows)])
            for s in range(n_rows):
                same &= bool(np.array_equal(rows[s],
                                            alone[s].decode([(nxt[s], len(prompts[s]), 0)])[0]))
                prompts[s].append(nxt[s])
        return same
    finally:
        for r in (together, *alone):
            r.close()


#: What kernel_switch_rows must say. llama.cpp's quantizer writes output.weight as Q6_K
#: for the Q4/Q5 types, so those switch at 8 rows like K-quants; only Q8_0 (all Q8_0)
#: and SmolLM2 (Q4_1, output tied to a Q8_0 embedding) are exact at every call size.
EXPECTED = {"f32": (2,), "f16": (2,), "bf16": (2,), "q8_0": (), "q4_0": (8,), "q4_1": (8,),
            "q4_k_m": (8,), "q6_k": (8,), "gemma3": (8,), "smollm2": ()}


@pytest.mark.slow
@pytest.mark.parametrize("qtype", [*TYPES, "gemma3", "smollm2"])
def test_switch_rows_predict_which_call_sizes_change_a_row(typed, qtype):
    from lamina.runtime.model import kernel_switch_rows
    from tests.realmodels.conftest import model_file

    path = model_file(qtype) if qtype in ("gemma3", "smollm2") else typed(qtype)
    switches = kernel_switch_rows(path)
    assert switches == EXPECTED[qtype]
    for n_rows in (2, 8):
        predicted = all(s > n_rows for s in switches)
        assert _rows_identical(path, n_rows) == predicted, (qtype, n_rows)


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["f16", "q8_0", "q4_k_m"])
def test_exact_engine_keeps_each_row_in_its_one_row_kernel(typed, qtype):
    """4 sequences of 12 tokens: one call per sequence and step on F16, all 4 in one
    call on K-quants (under 8 rows) and on Q8_0 (every size is exact there)."""
    import lamina
    from lamina.runtime.engine import BatchEngine
    from lamina.runtime.sampling import SamplingParams

    model = lamina.load(typed(qtype), n_ctx=512, n_threads=2)
    try:
        prompts = [[model.bos_id, 10 + i, 20 + i] for i in range(4)]
        eng = BatchEngine(model, n_seq_max=4, n_ctx_per_seq=128)
        try:
            reqs = [eng.submit(p, SamplingParams.greedy(max_tokens=12)) for p in prompts]
            eng.run(reqs)
            stats = eng.stats()
        finally:
            eng.close()
        assert [len(r.tokens) for r in reqs] == [12] * 4  # no EOS on the way
        # The first token of each comes from its prompt's call (a call of its own, as
        # a plain loop evaluates it); 11 steps follow.
        calls = {"f16": 4 + 11 * 4, "q4_k_m": 4 + 11, "q8_0": 4 + 11}[qtype]
        assert stats["decode_calls"] == calls
        expected = [model.generate(p, SamplingParams.greedy(max_tokens=12)) for p in prompts]
        assert [r.text for r in reqs] == expected
    finally:
        model.close()
