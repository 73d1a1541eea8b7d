"""lamina.files: outputs appear whole or not at all, and never replace what they should not."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lamina import files
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
    from lamina.convert.family import HParams
    from lamina.errors import FormatError
    from lamina.files import read_json_object

    cfg = tmp_path / "config.json"
    cfg.write_text("[1, 2]")
    with pytest.raises(FormatError, match="must hold a JSON object"):
        HParams.from_hf_config(tmp_path)
    cfg.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(FormatError, match="is not valid JSON"):
        read_json_object(cfg)
    cfg.write_text('{"a": 1}')
    assert read_json_object(cfg) == {"a": 1}


# ------------------------------------------------------- leftovers of killed runs

#: A writer that announces its temporary path, then waits to be killed.
_WRITER = """
import sys, time
from lamina.files import atomic_output, atomic_output_dir
if sys.argv[2] == "dir":
    with atomic_output_dir(sys.argv[1]) as tmp:
        (tmp / "a.bin").write_bytes(b"a" * int(sys.argv[3]))
        (tmp / "b.bin").write_bytes(b"b" * 10)
        print(tmp, flush=True)
        time.sleep(600)
with atomic_output(sys.argv[1]) as tmp:
    tmp.write_bytes(b"x" * int(sys.argv[3]))
    print(tmp, flush=True)
    time.sleep(600)
"""


def start_writer(target: Path, nbytes: int, kind: str = "file") -> tuple[subprocess.Popen, Path]:
    """A real child process in the middle of an atomic write; returns it and its temporary."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), kind, str(nbytes)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # written once the temporary is complete
    assert line, "the writer died before creating its temporary"
    return proc, Path(line)


def kill_writer(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)  # no cleanup handler runs: the temporary stays
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def leftover_name(target: Path, pid: int, suffix: str = ".part") -> Path:
    return target.with_name(f".{target.name}.{pid}-{files._HOST}-0123abcd{suffix}")


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftover_of_a_killed_writer_is_removed_by_the_next_write(tmp_path, caplog):
    target = tmp_path / "out.bin"
    proc, tmp = start_writer(target, 300_000)
    assert tmp.name.startswith(f".out.bin.{proc.pid}-") and tmp.name.endswith(".part")
    kill_writer(proc)
    assert tmp.exists() and not target.exists()

    with caplog.at_level(logging.INFO, logger="lamina.files"), atomic_output(target) as new:
        assert not tmp.exists()  # removed before the new temporary is made
        new.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    (found,) = [r.leftovers for r in caplog.records if hasattr(r, "leftovers")]
    assert found.removed == (tmp,) and found.freed_bytes == 300_000 and found.kept == ()


def test_leftover_folder_of_a_killed_merge_is_removed_with_its_size(tmp_path):
    target = tmp_path / "merged"
    proc, tmp = start_writer(target, 5000, kind="dir")
    kill_writer(proc)
    assert tmp.is_dir()
    found = files.remove_leftovers(target)
    assert found.removed == (tmp,) and found.freed_bytes == 5010
    assert list(tmp_path.iterdir()) == []


def test_a_live_writers_temporary_is_never_removed(tmp_path):
    target = tmp_path / "out.bin"
    proc, tmp = start_writer(target, 1000)
    try:
        assert files.remove_leftovers(target) == files.Leftovers()
        with atomic_output(target) as new:  # a second writer of the same output
            new.write_bytes(b"mine")
        assert tmp.exists() and target.read_bytes() == b"mine"
    finally:
        kill_writer(proc)


def test_pid_checks_follow_kill_semantics(tmp_path, monkeypatch):
    """PermissionError (someone else's live process) keeps; ProcessLookupError removes."""
    target = tmp_path / "out.bin"
    leftover = leftover_name(target, 4242)
    leftover.write_bytes(b"12345")

    def kill(error):
        def fake(pid: int, sig: int) -> None:
            assert (pid, sig) == (4242, 0)
            raise error
        return fake

    monkeypatch.setattr(files.os, "kill", kill(PermissionError()))
    assert not files.remove_leftovers(target) and leftover.exists()
    monkeypatch.setattr(files.os, "kill", kill(ProcessLookupError()))
    assert files.remove_leftovers(target).freed_bytes == 5 and not leftover.exists()


def test_only_the_exact_temporary_pattern_of_that_output_is_removed(tmp_path):
    target = tmp_path / "out.bin"
    pid, host = dead_pid(), files._HOST
    real = leftover_name(target, pid)
    real.write_bytes(b"gone")
    lookalikes = [
        f".out.bin.{pid}-{host}-0123abcd.partial",    # another suffix
        f".out.bin.{pid}-{host}-0123abc.part",        # short random part
        f".out.bin.{pid}-{host}-0123ABCD.part",       # not lamina's hex
        f"out.bin.{pid}-{host}-0123abcd.part",        # not hidden
        f".out.bin.v2.{pid}-{host}-0123abcd.part",    # another output's temporary
        f".xout.bin.{pid}-{host}-0123abcd.part",
        f".out.bin.{pid}-{host}-0123abcd.part.bak",
        f".out.bin.{pid}.{host}.0123abcd.part",       # dots, not dashes
        "out.bin.part", ".out.bin.part",
    ]
    for name in lookalikes:
        (tmp_path / name).write_bytes(b"keep me")
    link = leftover_name(target, pid).with_name(f".out.bin.{pid}-{host}-4567abcd.part")
    link.symlink_to(tmp_path / "out.bin.part")
    other_host = tmp_path / f".out.bin.{pid}-{'0' if host[0] != '0' else '1'}{host[1:]}-0123abcd.part"
    other_host.write_bytes(b"on another machine")

    found = files.remove_leftovers(target)
    assert found.removed == (real,) and found.freed_bytes == 4
    assert found.kept == (other_host,)  # its pid cannot be checked here: reported, kept
    remaining = {p.name for p in tmp_path.iterdir()}
    assert remaining == {*lookalikes, link.name, other_host.name}


def test_pidless_leftovers_of_older_versions_go_only_when_a_day_old(tmp_path):
    """tempfile's names (lamina before pid tags) cannot be attributed: age decides."""
    target = tmp_path / "out.bin"
    old = tmp_path / ".out.bin.k2x_9q0a.part"
    young = tmp_path / ".out.bin.abcd1234.part"
    old_build = tmp_path / ".out.bin.build-zz9_ab01"
    for p in (old, young):
        p.write_bytes(b"12345678")
    old_build.mkdir()
    (old_build / "model-f16.gguf").write_bytes(b"f" * 100)
    two_days_ago = time.time() - 2 * 86400
    for p in (old, old_build / "model-f16.gguf", old_build):
        os.utime(p, (two_days_ago, two_days_ago))

    found = files.remove_leftovers(target)
    assert found.removed == (old,) and found.kept == (young,) and young.exists()
    found = files.remove_leftovers(target, ".build")
    assert found.removed == (old_build,) and found.freed_bytes == 100


def test_temporary_names_carry_this_process(tmp_path):
    with atomic_output(tmp_path / "m.gguf") as tmp:
        assert tmp.name.startswith(f".m.gguf.{os.getpid()}-{files._HOST}-")
        assert files.remove_leftovers(tmp_path / "m.gguf") == files.Leftovers()  # ours: alive
        assert tmp.exists()
