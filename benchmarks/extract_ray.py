"""``lamina extract --ray`` with 1 and 2 workers next to the local path, on this machine.

The same documents, schema, model and greedy grammar decoding as the local
runs; the Ray runs start their own local Ray instance (its start-up is shown
separately: ``docs/s`` is the extraction phase, workers loading the model
included), and their output must be byte-identical to the local engine's. The
arms are interleaved over several rounds and each figure is its best round,
because shared machines are noisy.

    python benchmarks/extract_ray.py [--docs 32] [--batch 16] [--max-tokens 48] [--rounds 2]

``benchmarks/extract.py --ray`` adds the same rows (``ray_rows``) to its table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORK, Timer, print_table, save_result  # noqa: E402

COLUMNS = ["run", "workers × threads", "docs/s", "vs local engine", "total s (Ray start incl.)",
           "same output as local engine"]


def write_docs(texts: list[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                            for i, t in enumerate(texts)), encoding="utf-8")
    return path


def run_local(model: Path, docs: Path, out: Path, schema: list[str], batch: int, threads: int,
              max_tokens: int) -> float:
    """The local path as ``lamina extract`` runs it (model load included); docs/s.

    Run in a child process with its own session: Linux autogroup scheduling gives
    every session (and so every Ray worker, which Ray starts with ``setsid``) its
    own CPU share, so on a busy machine an in-process local run would be handicapped.
    """
    import subprocess

    cmd = [sys.executable, str(Path(__file__).resolve()), "--local-only", str(out),
           "--model", str(model), "--input", str(docs), "--schema", json.dumps(schema),
           "--batch", str(batch), "--threads", str(threads), "--max-tokens", str(max_tokens)]
    proc = subprocess.run(cmd, capture_output=True, text=True, start_new_session=True)
    if proc.returncode != 0:
        raise RuntimeError(f"local run failed: {proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["docs_per_s"])


def _local_only(args: argparse.Namespace) -> None:
    """Child side of ``run_local``: time load + extract_many, print docs/s as JSON."""
    import lamina
    from lamina.ie.api import extract_many
    from lamina.ie.io import read_inputs
    from lamina.runtime.sampling import SamplingParams

    items = list(read_inputs(args.input))
    with Timer() as t:
        llm = lamina.load(args.model, n_threads=args.threads)
        records = list(extract_many(llm, items, batch=args.batch, schema=json.loads(args.schema),
                                    params=SamplingParams.greedy(max_tokens=args.max_tokens)))
    Path(args.local_only).write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(json.dumps({"docs_per_s": len(items) / t.seconds}))


def run_ray(model: Path, docs: Path, out: Path, schema: list[str], *, workers: int,
            threads: int, batch: int, max_tokens: int) -> Any:
    """One ``lamina extract --ray`` run on a fresh local Ray instance; its report."""
    from lamina.ray.runner import RayExtractOptions, run_extract
    from lamina.ray.worker import ExtractSettings

    report = run_extract(RayExtractOptions(
        model=model, input=str(docs), output=out, workers=workers, threads=threads,
        batch_size=max(8, batch), force=True,
        settings=ExtractSettings(options={"schema": schema}, batch=batch, max_tokens=max_tokens)))
    assert report.records_in == report.records_out + report.errors, report.check
    return report


def layouts(cores: int) -> list[tuple[int, int]]:
    """(workers, threads per worker): one worker with every core, one worker per core."""
    return [(1, cores), (cores, 1)]


def ray_row(workers: int, threads: int, docs_per_s: float, total_s: float,
            local_docs_per_s: float, same: bool) -> list[Any]:
    return [f"lamina --ray ({workers} worker{'s' if workers > 1 else ''})",
            f"{workers} × {threads}", f"{docs_per_s:.2f}", f"{docs_per_s / local_docs_per_s:.2f}x",
            f"{total_s:.1f}", "yes" if same else "NO"]


def ray_rows(model: Path, docs: Path, schema: list[str], *, batch: int, max_tokens: int,
             local_docs_per_s: float, reference: Path | None, work: Path,
             cores: int = 2) -> list[list[Any]]:
    """One row per Ray layout, for ``benchmarks/extract.py --ray``'s table."""
    rows = []
    for workers, threads in layouts(cores):
        out = work / f"ray-{workers}w.jsonl"
        report = run_ray(model, docs, out, schema, workers=workers, threads=threads,
                         batch=batch, max_tokens=max_tokens)
        same = reference is None or out.read_bytes() == reference.read_bytes()
        rows.append(ray_row(workers, threads, report.docs_per_second, report.seconds,
                            local_docs_per_s, same))
    return rows


def ray_results(model: Path, docs: list[str], schema: list[str], *, threads: int, batch: int,
                max_tokens: int, limits: Any, n_ctx: int | None, work: Path,
                ) -> list[tuple[str, float, list[str]]]:
    """The ``--ray`` arms of ``benchmarks/extract.py``: (name, seconds, answers) per layout.

    Seconds are the extraction phase (workers loading the model included, Ray
    start-up excluded), so the docs/s compare with the in-process arms.
    """
    from lamina.ray.runner import RayExtractOptions, run_extract
    from lamina.ray.worker import ExtractSettings

    src = write_docs(docs, work / "docs.jsonl")
    results = []
    for workers, per_worker in layouts(threads):
        out = work / f"ray-{workers}x{per_worker}.jsonl"
        report = run_extract(RayExtractOptions(
            model=model, input=str(src), output=out, workers=workers, threads=per_worker,
            batch_size=max(8, batch), n_ctx=n_ctx, force=True,
            settings=ExtractSettings(options={"task": "NER", "schema": schema, "limits": limits},
                                     batch=batch, max_tokens=max_tokens)))
        assert report.records_in == report.records_out + report.errors == len(docs), report.check
        answers = [json.loads(line)["output"] for line in out.read_text("utf-8").splitlines()]
        name = (f"lamina extract --ray --workers {workers} -t {per_worker}"
                f"{f' --batch {batch}' if batch > 1 else ''}")
        results.append((name, report.extract_seconds, answers))
        print(f"{name}: {report.extract_seconds:.1f} s ({report.check})", file=sys.stderr)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="cores to use (local threads)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2,
                    help="interleaved rounds; each figure is its best round (shared machines)")
    ap.add_argument("--local-only", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--input", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--schema", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.local_only:
        _local_only(args)
        return

    from engine import SCHEMA, documents, ensure_model

    work = WORK / "extract_ray"
    work.mkdir(parents=True, exist_ok=True)
    model = ensure_model(WORK)
    docs = write_docs(documents(args.docs), work / "docs.jsonl")
    ref = work / "local-engine.jsonl"
    best: dict[str, tuple[float, float]] = {}
    same: dict[str, bool] = {}
    for _ in range(args.rounds):  # interleaved, so a busy spell hits every arm alike
        rate = run_local(model, docs, ref, SCHEMA, args.batch, args.threads, args.max_tokens)
        best["local"] = max(best.get("local", (0.0, 0.0)), (rate, 0.0))
        for workers, threads in layouts(args.threads):
            key = f"{workers}x{threads}"
            out = work / f"ray-{key}.jsonl"
            report = run_ray(model, docs, out, SCHEMA, workers=workers, threads=threads,
                             batch=args.batch, max_tokens=args.max_tokens)
            best[key] = max(best.get(key, (0.0, 0.0)), (report.docs_per_second, report.seconds))
            same[key] = same.get(key, True) and out.read_bytes() == ref.read_bytes()
    local = best["local"][0]
    rows: list[list[Any]] = [[f"lamina local (engine, batch {args.batch})",
                              f"1 × {args.threads}", f"{local:.2f}", "1.00x", "", "reference"]]
    for workers, threads in layouts(args.threads):
        rate, total = best[f"{workers}x{threads}"]
        rows.append(ray_row(workers, threads, rate, total, local, same[f"{workers}x{threads}"]))
    title = (f"Extraction on Ray vs local: {args.docs} docs, 6-type NER, greedy + grammar, "
             f"136M Q4_K_M model, {args.threads} cores, best of {args.rounds} interleaved rounds")
    print_table(title, COLUMNS, rows)
    save_result("extract_ray", title, COLUMNS, rows,
                notes="docs/s = extraction phase (workers loading the model included, Ray "
                      "start-up excluded); total s includes starting the local Ray instance.")


if __name__ == "__main__":
    main()
