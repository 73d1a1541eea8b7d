"""lamina.quantize.quantizer: every type, byte identity with libllama, sizes, progress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lamina.quantize.quantizer import quantize
from lamina.quantize.types import QUANT_TYPES, get_quant_type
from tests.quantize.helpers import (
    direct_quantize,
    imatrix_values,
    write_imatrix_dat,
    write_imatrix_gguf,
)

# Types whose quantizers search lattices/grids: seconds of setup per process.
GRID_TYPES = {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS",
              "IQ3_S", "IQ3_M"}


@pytest.fixture(scope="session")
def imatrix_file(qfix, tmp_path_factory) -> Path:
    return write_imatrix_gguf(tmp_path_factory.mktemp("imatrix") / "imatrix.gguf",
                              imatrix_values(qfix.f16))


@pytest.fixture(scope="session")
def small_imatrix(qfix_small, tmp_path_factory) -> Path:
    return write_imatrix_gguf(tmp_path_factory.mktemp("imatrix") / "small.gguf",
                              imatrix_values(qfix_small.f16))


def _loads_and_runs(path: Path) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=32, n_batch=32, logits_all=True,
                          verbose=False)
    try:
        tokens = llm.tokenize("北京 weather today".encode(), add_bos=True)
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)])
    finally:
        llm.close()


@pytest.mark.parametrize(
    "qtype",
    [pytest.param(t.name, marks=pytest.mark.slow) if t.name in GRID_TYPES else t.name
     for t in QUANT_TYPES],
)
def test_every_listed_type_quantizes_and_loads(qfix_small, small_imatrix, tmp_path, qtype):
    qt = get_quant_type(qtype)
    out = tmp_path / f"{qtype}.gguf"
    report = quantize(qfix_small.f16, out, qtype,
                      imatrix=small_imatrix if qt.needs_imatrix else None)
    assert out.is_file() and report.output_bytes == out.stat().st_size
    logits = _loads_and_runs(out)
    assert np.isfinite(logits).all() and logits.std() > 0
    if qt.kind in ("legacy", "k-quant") and qt.name != "Q8_0":
        assert report.output_bytes < 0.5 * qfix_small.f16.stat().st_size


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q8_0", "IQ4_XS", "Q5_0"])
def test_output_is_byte_identical_to_direct_llama_model_quantize(qfix, tmp_path, qtype):
    ours = tmp_path / "lamina.gguf"
    theirs = tmp_path / "direct.gguf"
    quantize(qfix.f16, ours, qtype, n_threads=2)
    assert direct_quantize(qfix.f16, theirs, get_quant_type(qtype).ftype, nthread=1) == 0
    assert ours.read_bytes() == theirs.read_bytes()


def test_sizes_q4_k_m_smaller_than_q8_0_smaller_than_f16(qfix, quantized):
    q4 = quantized("Q4_K_M").stat().st_size
    q8 = quantized("Q8_0").stat().st_size
    assert q4 < q8 < qfix.f16.stat().st_size


def test_progress_reports_every_tensor_in_order(qfix, tmp_path):
    import gguf

    seen: list[tuple[int, int, str]] = []
    quantize(qfix.f16, tmp_path / "q.gguf", "Q4_0", on_tensor=lambda i, n, name: seen.append(
        (i, n, name)))
    names = [t.name for t in gguf.GGUFReader(str(qfix.f16)).tensors]
    assert [i for i, _, _ in seen] == list(range(1, len(names) + 1))
    assert {n for _, n, _ in seen} == {len(names)}
    assert sorted(name for _, _, name in seen) == sorted(names)


def test_report_histogram_and_bits_per_weight(qfix, tmp_path):
    report = quantize(qfix.f16, tmp_path / "q.gguf", "Q4_K_M")
    assert report.type_histogram["F32"] == 5  # the norms stay float
    assert report.type_histogram.get("Q4_K", 0) > report.type_histogram.get("Q6_K", 0) > 0
    assert 4.5 <= report.bits_per_weight < 6.5


def test_keep_output_f16_stores_output_weight_as_f16(qfix, tmp_path):
    import gguf

    quantize(qfix.f16, tmp_path / "q.gguf", "Q4_0", keep_output_f16=True)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(tmp_path / "q.gguf")).tensors}
    assert types["output.weight"] == "F16"
    assert types["blk.0.attn_q.weight"] == "Q4_0"


def test_imatrix_changes_the_result_and_is_recorded(qfix, imatrix_file, tmp_path):
    import gguf

    plain = tmp_path / "plain.gguf"
    weighted = tmp_path / "weighted.gguf"
    quantize(qfix.f16, plain, "Q4_K_M")
    quantize(qfix.f16, weighted, "Q4_K_M", imatrix=imatrix_file)
    assert plain.read_bytes() != weighted.read_bytes()
    fields = gguf.GGUFReader(str(weighted)).fields
    assert fields["quantize.imatrix.file"].contents() == str(imatrix_file)
    assert fields["quantize.imatrix.entries_count"].contents() == len(imatrix_values(qfix.f16))
    assert fields["quantize.imatrix.dataset"].contents() == "lamina-test"


def test_legacy_dat_and_gguf_imatrix_give_the_same_quantization(qfix, imatrix_file, tmp_path):
    from lamina.quantize.imatrix import load_imatrix

    values = imatrix_values(qfix.f16)
    dat = write_imatrix_dat(tmp_path / "imatrix.dat", values)
    a, b = load_imatrix(imatrix_file), load_imatrix(dat)
    assert a.values.keys() == b.values.keys() == values.keys()
    for name, expected in values.items():
        np.testing.assert_allclose(a.values[name], expected, rtol=1e-6)
        np.testing.assert_allclose(b.values[name], expected, rtol=1e-6)
    assert (a.chunk_count, a.datasets) == (b.chunk_count, b.datasets) == (3, ["lamina-test"])


def test_interrupt_kills_the_worker_and_leaves_no_file(qfix, tmp_path):
    def stop(index: int, total: int, name: str) -> None:
        if index == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize(qfix.f16, tmp_path / "q.gguf", "Q4_K_M", on_tensor=stop)
    assert list(tmp_path.iterdir()) == []


def test_copy_rewrites_without_quantizing(qfix, tmp_path):
    report = quantize(qfix.f16, tmp_path / "copy.gguf", "COPY")
    assert set(report.type_histogram) == {"F16", "F32"}
