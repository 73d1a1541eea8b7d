"""Safe output files: never leave a half-written result behind, nor its leftovers.

Every command that writes a result goes through ``atomic_output``: the data is
written to a temporary file in the destination folder and renamed over the
target only when the writer finished without error. A crash, a Ctrl-C or a
full disk leaves the old state (no file, or the previous one) untouched.

A process killed outright (SIGKILL, the OOM killer, a power cut) gets no chance
to remove its temporary file, and a killed ``lamina build`` leaves hundreds of
MB each time. So every temporary name carries its owner, the process id and a
tag of the machine (``.model.gguf.4242-1a2b3c-9f8e7d6c.part``), and the next
run that writes the same output removes the temporaries whose owner is gone
(``remove_leftovers``). It reports what it freed through the ``lamina.files``
logger (INFO, the result in ``record.leftovers``): the library prints nothing;
the CLI shows it as one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.errors import FormatError, InputError, OutputExistsError

log = logging.getLogger(__name__)

#: Temporaries named by tempfile (lamina before owner-tagged names) carry no
#: owner; they are removed only when untouched for this long (see remove_leftovers).
LEGACY_MIN_AGE_S = 24 * 3600

#: suffix -> the pid-less name older versions used, ``{name}`` the output's name.
#: ``[a-z0-9_]{8}`` is what tempfile.mkstemp/mkdtemp put in the middle.
_LEGACY_NAMES = {
    ".part": r"\.{name}\.[a-z0-9_]{{8}}\.part",
    ".build": r"\.{name}\.build-[a-z0-9_]{{8}}",
}


def _host_tag() -> str:
    """Six hex digits naming this machine (or container): a pid means nothing elsewhere."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


_HOST = _host_tag()


def temp_name(out_name: str, suffix: str = ".part") -> str:
    """A fresh temporary name for output ``out_name``, tagged with this process.

    ``.NAME.<pid>-<host>-<random>SUFFIX``: the dashes (never the dot tempfile
    puts before its random part) keep it from matching any pid-less old name,
    and the fixed shape keeps ``remove_leftovers`` from touching anything else.
    """
    return f".{out_name}.{os.getpid()}-{_HOST}-{secrets.token_hex(4)}{suffix}"


def make_temp(parent: Path, out_name: str, suffix: str = ".part", folder: bool = False) -> Path:
    """Create an empty temporary file (or private folder) in ``parent`` for ``out_name``.

    A file gets the mode ``open()`` would give (0666 less the umask), since it
    becomes the output; a folder is private (0700) like ``tempfile.mkdtemp``'s.
    Raises OSError (callers word the message for their command).
    """
    for _ in range(100):
        path = parent / temp_name(out_name, suffix)
        try:
            if folder:
                os.mkdir(path, 0o700)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name for '{out_name}' in '{parent}'")


@dataclass(frozen=True)
class Leftovers:
    """What ``remove_leftovers`` found: temporaries it removed, and ones it left.

    ``kept`` holds temporaries whose owner cannot be shown to be gone: a
    pid-less name from an older lamina that was touched recently, or a name
    made on another machine sharing the folder. They are reported, not removed.
    """

    removed: tuple[Path, ...] = ()
    freed_bytes: int = 0
    kept: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.removed or self.kept)

    def __add__(self, other: Leftovers) -> Leftovers:
        return Leftovers(self.removed + other.removed, self.freed_bytes + other.freed_bytes,
                         self.kept + other.kept)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this machine) may still exist; True when unsure.

    ``os.kill(pid, 0)`` sends nothing: ProcessLookupError means gone, and
    PermissionError means alive but someone else's. Unsure counts as alive, as
    the cost of a wrong "gone" is deleting a running write. A reused pid looks
    alive, which only keeps a leftover a while longer. On Windows signal 0 is
    CTRL_C_EVENT, not a probe, so nothing is ever called dead there.
    """
    if pid <= 0 or pid == os.getpid() or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by another user
        return True
    return True


def _tree_stats(path: Path) -> tuple[int, float]:
    """(bytes, newest mtime) of a file or folder, not following symlinks."""
    st = path.lstat()
    if not path.is_dir():
        return st.st_size, st.st_mtime
    size, newest = 0, st.st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                sub = (Path(root) / name).lstat()
                newest = max(newest, sub.st_mtime)
                if name in files:
                    size += sub.st_size
    return size, newest


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:  # another run cleaned it first
        return False
    except OSError:  # not ours to remove (read-only folder, another user's file)
        return False
    return True


def remove_leftovers(output: str | os.PathLike[str], suffix: str = ".part",
                     folder: str | os.PathLike[str] | None = None) -> Leftovers:
    """Remove temporaries that killed runs left for ``output``; say what was freed.

    Looks in ``folder`` (default: the output's folder) for names of exactly
    the shape ``temp_name(output.name, suffix)`` makes, and removes those whose
    process is gone on this machine (``process_alive``). A live process's
    temporary, one made on another machine (its pid cannot be checked here)
    and any other name, however similar, are never touched.

    Pid-less names from lamina versions before owner-tagged names cannot be
    attributed. A running writer keeps touching its file, so one untouched for
    ``LEGACY_MIN_AGE_S`` (a day) is taken as dead and removed; a more recent
    one could be a running older lamina and is only reported in ``kept``.

    Anything found is logged at INFO on ``lamina.files`` with the result in
    ``record.leftovers`` (the CLI turns it into one line); nothing is printed.
    """
    out = Path(output)
    where = Path(folder) if folder is not None else (out.parent if str(out.parent) else Path("."))
    name = re.escape(out.name)
    owned = re.compile(rf"\.{name}\.(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{{6}})-[0-9a-f]{{8}}"
                       + re.escape(suffix))
    legacy = re.compile(_LEGACY_NAMES[suffix].format(name=name)) if suffix in _LEGACY_NAMES \
        else None
    prefix = f".{out.name}."
    removed: list[Path] = []
    kept: list[Path] = []
    freed = 0
    try:
        entries = [e.name for e in os.scandir(where) if e.name.startswith(prefix)]
    except OSError:  # no such folder (/dev/shm on macOS) or unreadable: nothing to do
        return Leftovers()
    now = time.time()
    for entry in sorted(entries):
        path = where / entry
        if path.is_symlink():
            continue  # lamina never makes links: not one of ours
        match = owned.fullmatch(entry)
        if match is not None:
            if match["host"] != _HOST:
                kept.append(path)  # its pid means nothing on this machine
                continue
            if process_alive(int(match["pid"])):
                continue  # a concurrent run's work in progress
        elif legacy is None or not legacy.fullmatch(entry):
            continue  # a similar name, but not one lamina makes
        try:
            size, mtime = _tree_stats(path)
        except OSError:
            continue
        if match is None and now - mtime < LEGACY_MIN_AGE_S:
            kept.append(path)  # pid-less and recent: maybe an older lamina still writing
            continue
        if _remove(path):
            removed.append(path)
            freed += size
    result = Leftovers(tuple(removed), freed, tuple(kept))
    if result:
        log.info("Leftover temporaries for '%s': removed %d (%.1f MB) of earlier interrupted "
                 "runs, left %d that may still be in use.", out, len(removed), freed / 1e6,
                 len(kept), extra={"leftovers": result})
    return result


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
    and the exception propagates. A SIGKILL leaves it behind under an
    owner-tagged name (``temp_name``), which the next write of ``path`` removes
    first (``remove_leftovers``), so kills cannot pile up files.
    """
    out = check_output_path(path, force=force)
    parent = out.parent if str(out.parent) else Path(".")
    remove_leftovers(out)
    try:
        tmp = make_temp(parent, out.name)
    except OSError as exc:
        raise InputError(f"Cannot create a file in '{parent}': {exc.strerror or exc}.") from exc
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


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Like ``atomic_output`` for a folder of files (``lamina merge``)."""
    out = check_output_path(path, force=force, is_dir=True)
    parent = out.parent if str(out.parent) else Path(".")
    remove_leftovers(out)
    try:
        tmp = make_temp(parent, out.name, folder=True)
    except OSError as exc:
        raise InputError(f"Cannot create a folder in '{parent}': {exc.strerror or exc}.") from exc
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


def human_bytes(n: float) -> str:
    """Sizes as people read them: 3.9 GB, 770 MB."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TB"
