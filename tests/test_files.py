"""lamina.files: outputs appear whole or not at all, and never replace what they should not."""

from __future__ import annotations

import pytest

from lamina.errors import InputError, OutputExistsError
from lamina.files import atomic_output, atomic_output_dir


def test_atomic_output_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_needs_force_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"new")
    assert target.read_bytes() == b"old"
    with atomic_output(target, force=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_a_file_output_never_replaces_a_folder(tmp_path):
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        with atomic_output(folder, force=True):
            pass
    assert folder.is_dir()


def test_folder_output_replaces_only_with_force(tmp_path):
    out = tmp_path / "merged"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(OutputExistsError), atomic_output_dir(out):
        pass
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_json_config_files_fail_with_one_clear_message(tmp_path):
    from lamina.convert.llama import LlamaHParams
    from lamina.errors import FormatError
    from lamina.files import read_json_object

    cfg = tmp_path / "config.json"
    cfg.write_text("[1, 2]")
    with pytest.raises(FormatError, match="must hold a JSON object"):
        LlamaHParams.from_hf_config(tmp_path)
    cfg.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(FormatError, match="is not valid JSON"):
        read_json_object(cfg)
    cfg.write_text('{"a": 1}')
    assert read_json_object(cfg) == {"a": 1}
