"""Bad input ends in one clear LaminaError and no file left behind (library and CLI)."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest

from lamina.errors import FormatError, InputError, LaminaError
from lamina.quantize.quantizer import quantize
from lamina.quantize.types import QuantTypeError, get_quant_type
from tests.quantize.helpers import run_lamina


def _only(folder: Path, *names: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_not_a_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 100)
    with pytest.raises(FormatError, match="not a GGUF file"):
        quantize(bad, tmp_path / "out.gguf", "Q4_K_M")
    _only(tmp_path, "model.gguf")


@pytest.mark.parametrize("keep", [0.5, 0.999, 100 / 3_000_000])
def test_truncated_gguf(qfix, tmp_path, keep):
    data = qfix.f16.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: max(64, int(len(data) * keep))])
    with pytest.raises(FormatError, match="truncated"):
        quantize(cut, tmp_path / "out.gguf", "Q4_K_M")
    _only(tmp_path, "cut.gguf")


def test_already_quantized_input(quantized, tmp_path):
    with pytest.raises(FormatError, match=r"already quantized \(.* is Q[0-9]"):
        quantize(quantized("Q4_K_M"), tmp_path / "out.gguf", "Q4_0")
    _only(tmp_path)


def test_unknown_type_name_suggests_close_ones(qfix, tmp_path):
    with pytest.raises(QuantTypeError, match="Unknown quantization type 'Q4_K_X'") as info:
        quantize(qfix.f16, tmp_path / "out.gguf", "Q4_K_X")
    assert "Q4_K_M" in info.value.hint
    _only(tmp_path)


def test_type_names_are_case_insensitive_and_aliases_work():
    assert get_quant_type("q4_k_m").name == "Q4_K_M"
    assert get_quant_type("Q4_K").name == "Q4_K_M"
    assert get_quant_type("iq4-xs").ftype == 30


def test_type_needing_imatrix_without_one(qfix, tmp_path):
    with pytest.raises(InputError, match="IQ2_XS needs an importance matrix"):
        quantize(qfix.f16, tmp_path / "out.gguf", "IQ2_XS")
    _only(tmp_path)


def test_imatrix_for_another_model(qfix, tmp_path):
    from tests.quantize.helpers import write_imatrix_gguf

    other = write_imatrix_gguf(tmp_path / "im.gguf", {"blk.9.other.weight": __import__(
        "numpy").ones(7, dtype="float32")})
    with pytest.raises(FormatError, match="no entry for any tensor"):
        quantize(qfix.f16, tmp_path / "out.gguf", "IQ2_XS", imatrix=other)
    _only(tmp_path, "im.gguf")


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        quantize(tmp_path / "nope.gguf", tmp_path / "out.gguf", "Q4_K_M")


def test_existing_output_needs_force(qfix, tmp_path):
    out = tmp_path / "out.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(LaminaError, match="already exists"):
        quantize(qfix.f16, out, "Q8_0")
    assert out.read_bytes() == b"keep me"
    quantize(qfix.f16, out, "Q8_0", force=True)
    assert out.read_bytes()[:4] == b"GGUF"


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody can create files in: chmod 555, or a read-only mount when root."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    for candidate in (Path("/sys/kernel"), Path("/proc/sys")):
        if candidate.is_dir():
            return candidate
    pytest.skip("no read-only folder available for root")


def test_read_only_output_folder(qfix, tmp_path):
    folder = _read_only_folder(tmp_path)
    before = set(os.listdir(folder))
    with pytest.raises(InputError, match="(Cannot write to the folder|Cannot create a file)"):
        quantize(qfix.f16, folder / "out.gguf", "Q4_K_M")
    assert set(os.listdir(folder)) == before


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_disk_full_while_writing_is_one_clear_message(qfix, tmp_path):
    """RLIMIT_FSIZE makes every write past 300 kB fail, as a full disk would."""
    out = tmp_path / "out" / "q.gguf"
    out.parent.mkdir()
    proc = run_lamina(["quantize", str(qfix.f16), "-o",
                           str(out), "--type", "Q8_0"], preexec_fn=_limit_file_size, timeout=120)
    assert proc.returncode == 1
    assert "disk may be full" in proc.stderr and "Traceback" not in proc.stderr
    _only(out.parent)


@pytest.mark.parametrize("args, message", [
    (["quantize", "{missing}", "-o", "{out}"], "does not exist"),
    (["quantize", "{f16}", "-o", "{out}", "--type", "Q9_9"], "Unknown quantization type"),
    (["quantize", "{f16}"], "Give the input GGUF and -o"),
    (["verify", "{missing}", "--reference", "{f16}"], "does not exist"),
    (["info", "{junk}"], "not a GGUF file"),
])
def test_cli_errors_have_no_traceback(qfix, tmp_path, args, message):
    junk = tmp_path / "junk.gguf"
    junk.write_text("hello")
    values = {"missing": tmp_path / "missing.gguf", "out": tmp_path / "out.gguf",
              "f16": qfix.f16, "junk": junk}
    argv = [a.format(**values) for a in args]
    proc = run_lamina([*argv], timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.gguf").exists()
