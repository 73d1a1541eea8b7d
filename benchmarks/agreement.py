"""Do greedy extractions depend on the batch, the threads or the kernels? (real models)

30 Chinese news sentences, 3-type NER schema, grammar on, on the two real GGUF
files the test tier uses (Gemma-3 270M Q4_K_M, SmolLM2-135M Q4_1). Each setting
is compared with ``--batch 1`` on 2 threads (identical parsed results out of
30), and timed. ``--fast-batch`` is the one setting that may change results.

    python benchmarks/agreement.py [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import print_table, save_result  # noqa: E402

SETTINGS = [("--batch 1", 1, 2, True), ("--batch 4", 4, 2, True), ("--batch 16", 16, 2, True),
            ("--batch 4 --threads 1", 4, 1, True), ("--batch 16 --threads 1", 16, 1, True),
            ("--batch 16 --fast-batch", 16, 2, False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()

    import lamina
    from lamina.ie.api import extract_many
    from lamina.runtime.sampling import SamplingParams
    from tests.realmodels.conftest import NEWS, SCHEMA, model_file

    rows = []
    for name in ("gemma3", "smollm2"):
        path = model_file(name)
        models = {t: lamina.load(path, n_threads=t) for t in (1, 2)}
        kw = dict(task="NER", schema=SCHEMA, params=SamplingParams.greedy(max_tokens=args.max_tokens))
        base = None
        for label, batch, threads, exact in SETTINGS:
            m = models[threads]
            list(extract_many(m, NEWS[:2], batch=batch, exact=exact, **kw))  # warm-up
            t0 = time.perf_counter()
            out = [r["result"] for r in extract_many(m, NEWS, batch=batch, exact=exact, **kw)]
            dt = time.perf_counter() - t0
            base = out if base is None else base
            same = sum(a == b for a, b in zip(base, out, strict=True))
            rows.append([path.name, label, f"{same}/{len(NEWS)}", f"{len(NEWS) / dt:.2f}"])
        for m in models.values():
            m.close()
    title = (f"Greedy NER on {len(rows) // len(SETTINGS)} real models, 30 documents, grammar on, "
             f"max {args.max_tokens} tokens: identical parsed results vs --batch 1")
    columns = ["model", "setting", "same as --batch 1", "docs/s"]
    print_table(title, columns, rows)
    save_result("agreement", title, columns, rows,
                notes="--ray --workers 2 is compared with the local run in the test suite "
                      "(tests/realmodels, 30/30). --fast-batch decodes a batch in one kernel "
                      "call, prompts packed with the decoding rows, so it can change results on "
                      "any model.")


if __name__ == "__main__":
    main()
