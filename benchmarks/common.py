"""Helpers every benchmark shares: timing, peak memory of a child process, tables.

Benchmarks compare lamina against a named baseline *in the same run* and report
ratios, because absolute times on shared machines are noisy. Each benchmark
prints one Rich table and writes its numbers to ``benchmarks/results/<name>.json``
so ``run_all.py`` can assemble RESULTS.md from one run.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("LAMINA_BENCH_WORK", HERE / ".work"))
RESULTS = HERE / "results"



def llama_spec(*, hidden_size: int, intermediate_size: int, num_hidden_layers: int,
               num_attention_heads: int, num_key_value_heads: int) -> dict[str, Any]:
    """HF config fields of a synthetic LLaMA of the given size.

    The benchmark models differ only in size; the rest is Chinese-LLaMA's own
    (a 32000-piece vocabulary, 2048 positions, its norm epsilon and RoPE base).
    """
    return {
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
    }

@dataclass
class ProcResult:
    seconds: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str
    wchar: int = 0  # bytes passed to write() by the command and its children
    write_bytes: int = 0  # bytes that reached the block layer (the disk)


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> ProcResult:
    """Run a command in a child process; wall time, peak RSS (ru_maxrss) and bytes written.

    Uses a fresh ``python -c`` wrapper so that ru_maxrss covers exactly one
    child: the wrapper waits for the command and reports RUSAGE_CHILDREN, and
    its /proc/self/io, which by then includes the I/O of every reaped
    descendant (Linux accumulates it on wait).
    """
    wrapper = (
        "import resource,subprocess,sys,json,time;"
        "t=time.perf_counter();p=subprocess.run(sys.argv[1:]);dt=time.perf_counter()-t;"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "io=dict(l.split(': ') for l in open('/proc/self/io').read().splitlines());"
        "print(json.dumps({'s':dt,'rss':r*1024,'rc':p.returncode,"
        "'wchar':int(io['wchar']),'wb':int(io['write_bytes'])}),file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "{}"
    try:
        info = json.loads(last)
    except json.JSONDecodeError:
        info = {"s": float("nan"), "rss": 0, "rc": proc.returncode}
    return ProcResult(info["s"], int(info["rss"]), int(info["rc"]), proc.stdout, proc.stderr,
                      int(info.get("wchar", 0)), int(info.get("wb", 0)))


class Timer:
    """``with Timer() as t: ...; t.seconds``"""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("lamina", "llama-cpp-python", "gguf", "torch", "transformers", "peft", "ray"):
        try:
            info[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return info


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console().print(table)


def save_result(name: str, title: str, columns: list[str], rows: list[list[Any]],
                notes: str = "", extra: dict[str, Any] | None = None) -> Path:
    """Write one benchmark's table as JSON for run_all.py / RESULTS.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"name": name, "title": title, "columns": columns,
               "rows": [[str(c) for c in r] for r in rows], "notes": notes,
               "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "command": " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
               "extra": extra or {}}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return path


def warm_cache(*paths: Path) -> None:
    """Read inputs once so every measured run starts with the same (hot) page cache."""
    for path in paths:
        files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
        for f in files:
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def self_peak_rss() -> int:
    """Peak RSS of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
