"""Run every benchmark and write benchmarks/RESULTS.md from that one run.

Each benchmark script prints its own Rich table and saves it to
benchmarks/results/<name>.json (benchmarks/common.save_result); this script
runs them in turn, then renders all saved tables into one Markdown report with
the machine, library versions and date. The docs pages render the same JSON
through cog (benchmarks/tables.py is the renderer for both), so after a run,
``cog -r docs/*.md README.md`` brings their tables and quoted numbers up to date. ``--only convert,decode`` runs a subset; ``--render`` only renders.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import RESULTS, machine_info  # noqa: E402
from tables import markdown  # noqa: E402

#: benchmark name -> (script, extra args). Order: cheap dependencies first.
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "convert": ("convert.py", []),
    "convert_qwen2": ("convert.py", ["--family", "qwen2"]),
    "quantize": ("quantize.py", []),
    "decode": ("decode.py", []),
    "extract": ("extract.py", []),
    "engine": ("engine.py", []),
    "agreement": ("agreement.py", []),
    "speculate": ("speculate.py", []),
    "extract_ray": ("extract_ray.py", []),
    "tg128": ("tg128.py", []),
    "serve": ("serve.py", []),
}


def run(names: list[str]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for name in names:
        script, args = BENCHMARKS[name]
        path = HERE / script
        if not path.exists():
            print(f"[skip] {name}: {script} not found", file=sys.stderr)
            continue
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        codes[name] = subprocess.call([sys.executable, str(path), *args])
        print(f"=== {name}: exit {codes[name]} in {time.perf_counter() - start:.0f} s ===", flush=True)
    return codes


def render(out: Path) -> None:
    """Render every saved result table into one Markdown file."""
    lines = ["# lamina benchmark results", ""]
    info = machine_info()
    lines.append(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
                 "`python benchmarks/run_all.py`.")
    lines.append("")
    lines.append("| machine | value |")
    lines.append("|---|---|")
    for key, value in info.items():
        lines.append(f"| {key} | {value} |")
    lines.append("")
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        lines.append(f"## {data['title']}")
        lines.append("")
        lines.append(f"_run {data.get('date', '?')}_")
        lines.append("")
        lines += markdown(data)
        if data.get("notes"):
            lines.append("")
            lines.append(data["notes"])
        lines.append("")
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(BENCHMARKS))
    parser.add_argument("--render", action="store_true", help="only render RESULTS.md")
    args = parser.parse_args()
    if not args.render:
        names = [n for n in (args.only.split(",") if args.only else BENCHMARKS) if n]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
        run(names)
    render(HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
