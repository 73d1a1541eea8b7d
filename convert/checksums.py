"""Checksum lists: verify downloaded checkpoints as the model cards ask users to.

Accepted list formats (auto-detected line by line, so one parser covers them):

* ``sha256sum``/``md5sum`` output: ``<hex>  <file>`` (also ``*<file>``); Meta's
  ``checklist.chk`` is this format with MD5 sums;
* BSD style: ``SHA256 (file) = <hex>``;
* Markdown tables or notes such as Chinese-LLaMA's SHA256.md: any line with one
  64-hex-digit sum and a file name (``adapter_model.bin``) in it.

A file is checked against every sum listed under its name (several LoRAs share
``adapter_model.bin``): it passes when one of them matches.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.errors import ChecksumError, InputError
from lamina.progress import TaskProgress

_HEX = re.compile(r"\b([0-9a-fA-F]{64}|[0-9a-fA-F]{32})\b")
_BSD = re.compile(r"^(SHA256|MD5)\s*\((?P<file>.+)\)\s*=\s*(?P<hex>[0-9a-fA-F]+)\s*$")
_FILE = re.compile(r"[\w./-]+\.(?:bin|pth|safetensors|json|model|gguf|chk|zip|tar|gz|txt|md)\b")

#: Names of list files a folder may ship (``lamina checksum DIR`` finds them).
LIST_NAMES = ("SHA256SUMS", "sha256sums.txt", "checksums.sha256", "SHA256.md", "checklist.chk")


@dataclass
class ChecksumRow:
    file: str
    size: int
    digest: str
    expected: list[str]
    status: str  # "ok" | "mismatch" | "unlisted" | "missing"


def parse_checksum_list(path: Path) -> dict[str, list[str]]:
    """{file base name: [hex digests]} from a checksum list in any supported format."""
    if not path.is_file():
        raise InputError(f"The checksum list '{path}' does not exist.")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"Cannot read the checksum list '{path}': {exc.strerror}.") from exc
    entries: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _BSD.match(line)
        if m:
            name, digest = m["file"], m["hex"]
        else:
            hexes = _HEX.findall(line)
            if len(hexes) != 1:
                continue
            digest = hexes[0]
            rest = line.replace(digest, " ")
            parts = rest.split()
            if len(parts) == 1 and line.startswith(digest):  # sha256sum format
                name = parts[0].lstrip("*")
            else:
                files = _FILE.findall(rest)
                if not files:
                    continue
                name = files[0]
        entries.setdefault(Path(name).name, []).append(digest.lower())
    if not entries:
        raise InputError(
            f"No checksums found in '{path}'.",
            hint="Expected lines like '<sha256>  <file name>' (sha256sum output).",
        )
    return entries


def file_digest(path: Path, algo: str = "sha256", progress: TaskProgress | None = None,
                task: Any | None = None) -> str:
    """Hex digest of a file, read in 4 MiB chunks (memory stays flat)."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
            if progress is not None and task is not None:
                progress.advance(task, len(block))
    return h.hexdigest()


def check_files(files: Iterable[Path], listed: dict[str, list[str]] | None,
                progress: TaskProgress | None = None) -> list[ChecksumRow]:
    """Hash each file and compare with the list (SHA-256, or MD5 for 32-digit sums)."""
    files = [Path(f) for f in files]
    task = None
    if progress is not None:
        task = progress.add_task("Checksumming", total=sum(f.stat().st_size for f in files))
    rows: list[ChecksumRow] = []
    for f in files:
        expected = (listed or {}).get(f.name, [])
        algos = {"md5" if len(e) == 32 else "sha256" for e in expected} or {"sha256"}
        digests = {a: file_digest(f, a, progress if a == sorted(algos)[0] else None, task)
                   for a in sorted(algos)}
        digest = digests.get("sha256") or next(iter(digests.values()))
        if not expected:
            status = "unlisted"
        elif any(digests["md5" if len(e) == 32 else "sha256"] == e for e in expected):
            status = "ok"
        else:
            status = "mismatch"
        rows.append(ChecksumRow(str(f), f.stat().st_size, digest, expected, status))
    return rows


def find_list(folder: Path) -> Path | None:
    for name in LIST_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.sha256"))
    return found[0] if found else None


def checksum_target(target: Path, sha256_list: Path | None = None,
                    progress: TaskProgress | None = None) -> tuple[list[ChecksumRow], Path | None]:
    """``lamina checksum``: hash a file or every file of a folder, verify against a list."""
    target = Path(target)
    if not target.exists():
        raise InputError(f"'{target}' does not exist.", hint="Give a model folder or a file.")
    list_path = sha256_list or (find_list(target) if target.is_dir() else None)
    listed = parse_checksum_list(Path(list_path)) if list_path else None
    if target.is_dir():
        skip = {Path(list_path).resolve()} if list_path else set()
        files = sorted(p for p in target.rglob("*")
                       if p.is_file() and p.resolve() not in skip and not p.name.startswith("."))
    else:
        files = [target]
    rows = check_files(files, listed, progress)
    if listed and target.is_dir():
        present = {Path(r.file).name for r in rows}
        for name, digests in listed.items():
            if name not in present:
                rows.append(ChecksumRow(name, 0, "", digests, "missing"))
    return rows, Path(list_path) if list_path else None


def raise_on_mismatch(rows: list[ChecksumRow], list_path: Path | None) -> None:
    bad = [r for r in rows if r.status == "mismatch"]
    if bad:
        names = ", ".join(Path(r.file).name for r in bad)
        raise ChecksumError(
            f"Checksum mismatch for {names} (list: {list_path}).",
            hint="The file is corrupt or not the expected version: download it again.",
        )


def verify_inputs(plan: Any, sha256_list: Path, progress: TaskProgress | None = None) -> list[str]:
    """Check every input file of a merge plan that the list names; return those checked."""
    listed = parse_checksum_list(Path(sha256_list))
    files: list[Path] = list(plan.base.input_files())
    for lo in plan.loras:
        files.append(lo.weight_file)
    if plan.diff is not None:
        files.extend(plan.diff.input_files())
    files.append(plan.tokenizer_model)
    files = [f for f in files if f.name in listed]
    if not files:
        raise ChecksumError(
            f"None of the input files is listed in '{sha256_list}'.",
            hint="Use the checksum list that came with these downloads (names must match).",
        )
    rows = check_files(files, listed, progress)
    raise_on_mismatch(rows, Path(sha256_list))
    return [r.file for r in rows]
