"""lamina.quantize.quality: the verify numbers mean what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.quantize.quality import chunk_plan, score_chunk, verify
from tests.quantize.helpers import run_lamina


def test_q8_0_agrees_with_f32(qfix, quantized):
    report = verify(quantized("Q8_0", qfix.f32), qfix.f32)
    assert report.top1_agreement >= 0.98
    assert report.kl_mean < 0.01
    assert report.n_scored >= 500
    assert abs(report.ppl_ratio - 1) < 0.01


def test_reference_against_itself_is_exact(qfix):
    report = verify(qfix.f32, qfix.f32, max_chunks=2)
    assert report.top1_agreement == 1.0
    assert report.kl_mean < 1e-9 and report.kl_p99 < 1e-9
    assert report.ppl_model == pytest.approx(report.ppl_reference, rel=1e-9)


def test_fewer_bits_lose_more(qfix, quantized):
    q8 = verify(quantized("Q8_0", qfix.f32), qfix.f32, max_chunks=4)
    q4 = verify(quantized("Q4_K_M", qfix.f32), qfix.f32, max_chunks=4)
    q2 = verify(quantized("Q2_K", qfix.f32), qfix.f32, max_chunks=4)
    assert q8.kl_mean < q4.kl_mean < q2.kl_mean
    assert q8.top1_agreement > q2.top1_agreement
    assert q4.kl_p99 > q4.kl_mean


def test_score_chunk_matches_definitions():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(5, 7))
    mod = ref + rng.normal(scale=0.3, size=(5, 7))
    targets = np.array([0, 3, 6, 2, 2])
    s = score_chunk(ref, mod, targets)
    p = np.exp(ref) / np.exp(ref).sum(1, keepdims=True)
    q = np.exp(mod) / np.exp(mod).sum(1, keepdims=True)
    np.testing.assert_allclose(s.kl, (p * np.log(p / q)).sum(1), rtol=1e-9)
    np.testing.assert_allclose(s.nll_reference, -np.log(p[np.arange(5), targets]), rtol=1e-9)
    np.testing.assert_allclose(s.nll_model, -np.log(q[np.arange(5), targets]), rtol=1e-9)
    assert list(s.top1_same) == list(p.argmax(1) == q.argmax(1))


def test_windows_are_fixed_size():
    assert chunk_plan(1000, 256) == (256, 3)
    assert chunk_plan(100, 256) == (100, 1)
    with pytest.raises(InputError, match="too short"):
        chunk_plan(5, 256)


def test_custom_text_and_json_cli(qfix, quantized, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("今天天气很好，我们一起去公园散步吧。The weather is sunny today. " * 30,
                    encoding="utf-8")
    proc = run_lamina(["verify", str(quantized("Q8_0")), "--reference",
         str(qfix.f16), "--text", str(text), "--ctx", "64", "--json"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["n_ctx"] == 64 and data["chunks"] >= 2
    assert data["tokens"] == data["chunks"] * (64 - 32 - 1)
    assert 0.9 <= data["top1_agreement"] <= 1.0


def test_empty_text_is_refused(qfix, tmp_path):
    with pytest.raises(InputError, match="empty"):
        verify(qfix.f16, qfix.f32, "   ")
