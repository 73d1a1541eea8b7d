"""Safe output files: never leave a half-written result behind.

Every command that writes a result goes through ``atomic_output``: the data is
written to a temporary file in the destination folder and renamed over the
target only when the writer finished without error. A crash, a Ctrl-C or a
full disk leaves the old state (no file, or the previous one) untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lamina.errors import FormatError, InputError, OutputExistsError


def check_output_path(path: str | os.PathLike[str], force: bool = False,
                      is_dir: bool = False) -> Path:
    """Validate an output path before any expensive work starts.

    ``is_dir`` says whether the output is a folder (``lamina merge``); a file
    output never replaces a folder, even with --force.
    """
    out = Path(path)
    if out.is_dir() and not is_dir:
        raise InputError(
            f"Output '{out}' is a folder, but a file is written here.",
            hint="Give a file path with -o, e.g. model.gguf.",
        )
    if out.exists() and not force:
        raise OutputExistsError(
            f"Output '{out}' already exists.",
            hint="Pass --force to overwrite it, or choose another path with -o.",
        )
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise InputError(
            f"The folder for the output, '{parent}', does not exist.",
            hint="Create it first, or choose another path with -o.",
        )
    if not os.access(parent, os.W_OK):
        raise InputError(
            f"Cannot write to the folder '{parent}' (permission denied or read-only).",
            hint="Choose a writable location with -o.",
        )
    return out


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and the exception propagates.
    """
    out = check_output_path(path, force=force)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=parent)
    except OSError as exc:
        raise InputError(f"Cannot create a file in '{parent}': {exc.strerror}.") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    _chmod_like_new_file(tmp)
    try:
        yield tmp
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == 28:  # ENOSPC
            raise InputError(
                f"The disk is full while writing '{out}'.",
                hint="Free some space or write the output elsewhere with -o.",
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _chmod_like_new_file(path: Path) -> None:
    """mkstemp makes 0600 files; give outputs the mode open() would (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(path, 0o666 & ~umask)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Like ``atomic_output`` for a folder of files (``lamina merge``)."""
    import shutil

    out = check_output_path(path, force=force, is_dir=True)
    parent = out.parent if str(out.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def require_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise a clear error when it is missing."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"The {what} '{p}' does not exist.", hint="Check the path and try again.")
    if p.is_dir():
        raise InputError(f"The {what} '{p}' is a folder, but a file was expected.")
    return p


def read_json_object(path: str | os.PathLike[str], holds: str = "a JSON object") -> dict[str, Any]:
    """Read a JSON file that must hold an object (config.json, adapter_config.json...).

    Bad bytes, bad JSON and a non-object all end in one FormatError naming the
    file; ``holds`` says what the object should be, for the message.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"'{p}' is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise FormatError(f"'{p}' must hold {holds}.")
    return data
