"""`lamina quantize` / `lamina build` options, each checked by its effect on the file.

Run in-process (click's CliRunner). References: gguf's own reader and dequantizers,
transformers' safetensors of the tuned model, SentencePiece's own piece list, and the
importance-weighted error an imatrix is meant to lower.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.cli import cli
from tests.quantize.helpers import imatrix_values, write_imatrix_gguf


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def tensors(path: Path) -> dict:
    import gguf

    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def dequantized(t) -> np.ndarray:
    import gguf

    return gguf.quants.dequantize(t.data, t.tensor_type).reshape(
        [int(n) for n in reversed(t.shape)]).astype(np.float64)


def test_keep_output_f16_stores_the_output_layer_as_f16(qfix, quantized, tmp_path):
    import gguf

    out = tmp_path / "keep.gguf"
    run("quantize", qfix.f16, "-o", out, "--type", "Q4_K_M", "--keep-output-f16")
    assert tensors(out)["output.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    plain = tensors(quantized("Q4_K_M"))["output.weight"].tensor_type
    assert plain == gguf.GGMLQuantizationType.Q6_K  # what Q4_K_M does without the flag


def skewed_imatrix(model: Path, path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Importances with one column in eight a hundred times as important."""
    values = imatrix_values(model, seed=5)
    for v in values.values():
        v[::8] *= 100.0
    return write_imatrix_gguf(path, values), values


def test_imatrix_lowers_the_importance_weighted_error(qfix, quantized, tmp_path):
    """What an importance matrix is for: each row's quantization error, weighted by the
    columns' importances, is smaller than without it."""
    im, values = skewed_imatrix(qfix.f16, tmp_path / "im.gguf")
    out = tmp_path / "im-q4.gguf"
    run("quantize", qfix.f16, "-o", out, "--type", "Q4_K_M", "--imatrix", im)
    source, with_im = tensors(qfix.f16), tensors(out)
    without = tensors(quantized("Q4_K_M"))
    compared = 0
    for name, importance in values.items():
        if with_im[name].tensor_type != without[name].tensor_type or name == "output.weight":
            continue
        w = dequantized(source[name])
        errors = [float((((dequantized(t[name]) - w) ** 2) * importance).sum())
                  for t in (with_im, without)]
        assert errors[0] < errors[1], name
        compared += 1
    assert compared >= 10


def test_build_passes_intermediate_tmp_dir_imatrix_keep_output_f16(qfix, tmp_path,
                                                                    monkeypatch):
    """--intermediate f32 quantizes from an f32 file made in --tmp-dir (and removed);
    the result equals quantizing the f32 conversion with the same settings."""
    import lamina.build as build_mod
    from lamina.quantize.quantizer import quantize

    seen: list[Path] = []
    real = build_mod.quantize

    def spy(src, *args, **kwargs):
        seen.append(Path(src))
        return real(src, *args, **kwargs)

    monkeypatch.setattr(build_mod, "quantize", spy)
    im, _ = skewed_imatrix(qfix.f16, tmp_path / "im.gguf")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "built.gguf"
    report = json.loads(run("build", qfix.hf, "-o", out, "--type", "Q4_K_M", "--no-verify",
                            "--intermediate", "f32", "--tmp-dir", scratch, "--imatrix", im,
                            "--keep-output-f16", "--json"))
    assert len(seen) == 1 and seen[0].is_relative_to(scratch)
    assert list(scratch.iterdir()) == []  # removed
    assert report["intermediate_bytes"] == qfix.f32.stat().st_size
    manual = tmp_path / "manual.gguf"
    quantize(qfix.f32, manual, "Q4_K_M", imatrix=im, keep_output_f16=True)
    assert out.read_bytes() == manual.read_bytes()
    from_f16 = tmp_path / "from-f16.gguf"
    quantize(qfix.f16, from_f16, "Q4_K_M", imatrix=im, keep_output_f16=True)
    assert out.read_bytes() != from_f16.read_bytes()  # f32 really was the intermediate


def renamed_tokenizer(src: Path, folder: Path) -> tuple[Path, list[str]]:
    """``src`` with one piece renamed (same size, so it fits the model)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(src.read_bytes())
    piece = next(p for p in proto.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL
                 and len(p.piece) > 1)
    piece.piece = "▁专用测试词"
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes(proto.SerializeToString())
    return folder, [p.piece for p in proto.pieces]


def test_build_diff_and_tokenizer(family, tmp_path):
    import gguf
    from safetensors.numpy import load_file

    tok_dir, pieces = renamed_tokenizer(family.base_tokenizer, tmp_path / "tok")
    out = tmp_path / "tuned.gguf"
    run("build", family.base_hf, "--diff", family.extra["diff"], "--tokenizer", tok_dir,
        "--type", "Q8_0", "--no-verify", "-o", out)
    reader = gguf.GGUFReader(str(out))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert tokens[:len(pieces)] == pieces and "▁专用测试词" in tokens

    def hf(folder: Path, name: str) -> np.ndarray:
        merged = {}
        for f in sorted(folder.glob("*.safetensors")):
            merged.update(load_file(f))
        return merged[name].astype(np.float64)

    name = "model.layers.0.mlp.down_proj.weight"
    tuned, base = hf(family.extra["tuned_hf"], name), hf(family.base_hf, name)
    got = dequantized({t.name: t for t in reader.tensors}["blk.0.ffn_down.weight"])
    scale = np.abs(tuned - base).max()
    assert scale > 0
    assert np.abs(got - tuned).max() < 0.1 * scale  # base + diff, within Q8_0's rounding
    assert np.abs(got - base).max() > 0.5 * scale


@pytest.fixture(autouse=True)
def _quiet_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
