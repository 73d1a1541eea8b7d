"""The compiled module itself: one llama.cpp in the process, clear errors for bad arguments."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest

MAPS_SCRIPT = textwrap.dedent("""
    import os, sys
    {first}
    {second}
    files = set()
    for line in open('/proc/self/maps'):
        parts = line.split()
        if len(parts) >= 6 and 'libllama' in os.path.basename(parts[5]):
            st = os.stat(parts[5])
            files.add((st.st_dev, st.st_ino))
    print(len(files))
""")


@pytest.mark.parametrize("order", [("lamina._native", "llama_cpp"), ("llama_cpp", "lamina._native")])
def test_exactly_one_libllama_is_mapped(tmp_path, order):
    first, second = (f"import {name}" for name in order)
    script = MAPS_SCRIPT.format(first=first, second=second)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout.strip() == "1", out.stdout + out.stderr


def _ptr(model) -> int:
    return int(ctypes.cast(model.llama._model.model, ctypes.c_void_p).value)


def test_zero_sequences_is_a_value_error(native, model):
    with pytest.raises(ValueError, match="n_seq_max"):
        native.BatchEngine(_ptr(model), 0, 256)


def test_null_model_is_a_value_error(native):
    with pytest.raises(ValueError, match="model"):
        native.BatchEngine(0, 2, 256)


def test_prompt_longer_than_context_is_a_value_error(native, model):
    eng = native.BatchEngine(_ptr(model), 2, 64, 2)
    with pytest.raises(ValueError, match="64"):
        eng.submit(list(range(1, 80)), native.SamplingConfig())
    with pytest.raises(ValueError, match="no tokens"):
        eng.submit([], native.SamplingConfig())
    with pytest.raises(ValueError, match="vocabulary"):
        eng.submit([1, 10**7], native.SamplingConfig())
    assert not eng.has_work()
    eng.close()


def test_invalid_grammar_is_a_value_error_and_nothing_is_queued(native, model):
    eng = native.BatchEngine(_ptr(model), 2, 64, 2)
    for bad in ('root ::= "a" (', 'start ::= "a"', "root ::= undefined_rule"):
        with pytest.raises(ValueError, match="grammar"):
            eng.submit([1, 2, 3], native.SamplingConfig(), bad)
    assert eng.n_queued == 0 and not eng.has_work()
    eng.close()


def test_closed_engine_raises_instead_of_crashing(native, model):
    eng = native.BatchEngine(_ptr(model), 1, 64, 2)
    eng.close()
    with pytest.raises(RuntimeError, match="closed"):
        eng.submit([1, 2, 3], native.SamplingConfig())
    with pytest.raises(RuntimeError, match="closed"):
        eng.step()


def _llama_cpp_greedy(row: list[float]) -> int:
    """llama.cpp's own greedy sampler applied to ``row`` (the reference)."""
    import llama_cpp as lc

    data = (lc.llama_token_data * len(row))(*[lc.llama_token_data(i, v, 0.0)
                                              for i, v in enumerate(row)])
    arr = lc.llama_token_data_array(data, len(row), -1, False)
    greedy = lc.llama_sampler_init_greedy()
    try:
        lc.llama_sampler_apply(greedy, ctypes.byref(arr))
    finally:
        lc.llama_sampler_free(greedy)
    return int(data[arr.selected].id)


def test_greedy_choice_is_llama_cpps_greedy_on_ties_nans_and_infinities(native):
    """The argmax the native sampler uses instead of copying the row into candidates
    picks what llama.cpp's greedy sampler picks: the first of equal maxima, never a NaN
    unless the row starts with one, -0.0 equal to 0.0; short rows (the scalar tail) and
    a Gemma-sized row (the vector passes)."""
    import random

    rng = random.Random(7)
    pool = [0.0, -0.0, 1.0, 2.0, -1.0, float("nan"), float("-inf"), float("inf")]
    rows = [[rng.choice(pool) if rng.random() < 0.6 else rng.gauss(0, 3)
             for _ in range(rng.randint(1, 70))] for _ in range(400)]
    big = [rng.gauss(0, 3) for _ in range(262144)]
    rows += [big, [*big[:-1], 99.0], [99.0, *big[1:]], [float("nan"), *big[1:]],
             [float("-inf")] * 33, [*big[:1000], 50.0, *big[1001:200000], 50.0, *big[200001:]]]
    for row in rows:
        assert native.greedy_choice(row) == _llama_cpp_greedy(row), row[:8]
