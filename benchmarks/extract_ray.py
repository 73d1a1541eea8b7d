"""``lamina extract --ray`` with 1 and 2 workers next to the local path, on this machine.

The same documents, schema, model and greedy grammar decoding as the local
runs; the Ray runs start their own local Ray instance (its start-up is shown
separately: ``docs/s`` is the extraction phase, workers loading the model
included). On one 2-core machine Ray cannot beat the local engine (same cores,
plus inter-process overhead); the point is what the overhead costs, and that the
output is byte-identical. On a cluster the pool grows with the nodes.

    python benchmarks/extract_ray.py [--docs 64] [--batch 16] [--max-tokens 64]

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
    """The local path as ``lamina extract`` runs it (model load included); docs/s."""
    from lamina.runtime.ie.api import extract_many
    from lamina.runtime.ie.io import read_inputs
    from lamina.runtime.sampling import SamplingParams

    import lamina

    items = list(read_inputs(docs))
    with Timer() as t:
        llm = lamina.load(model, n_threads=threads)
        records = list(extract_many(llm, items, batch=batch, schema=schema,
                                    params=SamplingParams.greedy(max_tokens=max_tokens)))
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                   encoding="utf-8")
    llm.close()
    return len(items) / t.seconds


def ray_rows(model: Path, docs: Path, schema: list[str], *, batch: int, max_tokens: int,
             local_docs_per_s: float, reference: Path | None, work: Path,
             cores: int = 2) -> list[list[Any]]:
    """One row per Ray layout on this machine: 1 worker × all cores, N workers × 1 core."""
    from lamina.runtime.ray.runner import RayExtractOptions, run_extract
    from lamina.runtime.ray.worker import ExtractSettings

    rows = []
    for workers, threads in ((1, cores), (cores, 1)):
        out = work / f"ray-{workers}w.jsonl"
        report = run_extract(RayExtractOptions(
            model=model, input=str(docs), output=out, workers=workers, threads=threads,
            batch_size=max(8, batch), force=True,
            settings=ExtractSettings(options={"schema": schema}, batch=batch,
                                     max_tokens=max_tokens)))
        assert report.records_in == report.records_out + report.errors, report.check
        same = "yes" if reference is None or out.read_bytes() == reference.read_bytes() else "NO"
        rows.append([f"lamina --ray ({workers} worker{'s' if workers > 1 else ''})",
                     f"{workers} × {threads}", f"{report.docs_per_second:.2f}",
                     f"{report.docs_per_second / local_docs_per_s:.2f}x",
                     f"{report.seconds:.1f}", same])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="cores to use (local threads)")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    from engine import SCHEMA, documents, ensure_model

    work = WORK / "extract_ray"
    work.mkdir(parents=True, exist_ok=True)
    model = ensure_model(WORK)
    docs = write_docs(documents(args.docs), work / "docs.jsonl")
    seq_out, eng_out = work / "local-seq.jsonl", work / "local-engine.jsonl"
    seq = run_local(model, docs, seq_out, SCHEMA, 1, args.threads, args.max_tokens)
    eng = run_local(model, docs, eng_out, SCHEMA, args.batch, args.threads, args.max_tokens)
    rows: list[list[Any]] = [
        ["lamina local (sequential)", f"1 × {args.threads}", f"{seq:.2f}", f"{seq / eng:.2f}x",
         "", "-"],
        [f"lamina local (engine, batch {args.batch})", f"1 × {args.threads}", f"{eng:.2f}",
         "1.00x", "", "reference"],
    ]
    rows += ray_rows(model, docs, SCHEMA, batch=args.batch, max_tokens=args.max_tokens,
                     local_docs_per_s=eng, reference=eng_out, work=work, cores=args.threads)
    title = (f"Extraction on Ray vs local: {args.docs} docs, 6-type NER, greedy + grammar, "
             f"136M Q4_K_M model, {args.threads} cores")
    print_table(title, COLUMNS, rows)
    save_result("extract_ray", title, COLUMNS, rows,
                notes="docs/s = extraction phase (model loading included, Ray start-up "
                      "excluded); total s includes starting the local Ray instance.")


if __name__ == "__main__":
    main()
