"""The timing-sensitive tests, run twice while two busy loops take the CPU.

The tests that start servers, hold slots, queue clients, interrupt a chat or kill an
extraction used to be sized in tokens and sleeps. They now wait for events (a
stream's first chunk, a /health reading, a write), so they must stay green however
slow the machine is. This script checks that: it starts two processes that spin
forever (on the 2-core CI machine, as many as there are cores), runs the chosen test
files twice with pytest, stops the spinners, and prints one table of outcomes per
test and run (JSON in benchmarks/results/stress_tests.json). It exits 1 when any test
failed.

    python benchmarks/stress_tests.py [--runs 2] [--spinners 2] [TEST ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from common import print_table, save_result  # noqa: E402

#: The tests whose timing depends on the machine's speed.
DEFAULT_TESTS = [
    "tests/server/test_concurrency.py",
    "tests/server/test_cli.py",
    "tests/server/test_options.py",
    "tests/ie/test_cli.py::test_resume_after_kill_gives_the_same_file_as_an_uninterrupted_run",
    "tests/runtime/test_cli.py::test_chat_in_a_terminal_like_a_person",
]


def start_spinners(n: int) -> list[subprocess.Popen]:
    """``n`` processes that keep one core busy each until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_spinners(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()


def run_tests(tests: list[str]) -> tuple[dict[str, tuple[str, float]], float, int]:
    """Outcome and seconds of each test (from pytest's JUnit XML), total seconds, exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                f"--junitxml={report}", *tests], cwd=REPO)
        seconds = time.perf_counter() - start
        outcomes: dict[str, tuple[str, float]] = {}
        if report.exists():
            for case in ET.parse(report).getroot().iter("testcase"):
                module = case.get("classname", "").replace(".", "/")
                name = f"{module}.py::{case.get('name')}"
                status = "passed"
                for child in case:
                    if child.tag in ("failure", "error"):
                        status = "FAILED" if child.tag == "failure" else "ERROR"
                    elif child.tag == "skipped":
                        status = "skipped"
                outcomes[name] = (status, float(case.get("time", 0.0)))
    return outcomes, seconds, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", nargs="*", default=DEFAULT_TESTS)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--spinners", type=int, default=2, help="busy-loop processes")
    args = parser.parse_args()

    spinners = start_spinners(args.spinners)
    runs = []
    try:
        for i in range(args.runs):
            print(f"=== run {i + 1}/{args.runs} under {args.spinners} busy loops ===", flush=True)
            runs.append(run_tests(args.tests))
    finally:
        stop_spinners(spinners)

    names = list(dict.fromkeys(n for outcomes, _, _ in runs for n in outcomes))
    columns = ["test", *(f"run {i + 1}" for i in range(len(runs)))]
    rows = [[name, *(f"{o[name][0]} ({o[name][1]:.1f} s)" if name in o else "missing"
                     for o, _, _ in runs)] for name in names]
    rows.append(["all (wall time)", *(f"exit {code} ({sec:.0f} s)" for _, sec, code in runs)])
    title = f"Timing-sensitive tests under load ({args.spinners} busy loops, {os.cpu_count()} cores)"
    print_table(title, columns, rows)
    failed = [r for r in rows[:-1] if any(not c.startswith(("passed", "skipped")) for c in r[1:])]
    save_result("stress_tests", title, columns, rows,
                notes=f"`python benchmarks/stress_tests.py`: {len(names)} tests, "
                      f"{len(runs)} runs, {len(failed)} with a failure.",
                extra={"tests": args.tests, "spinners": args.spinners,
                       "failed": [r[0] for r in failed]})
    sys.exit(1 if failed or any(code != 0 for _, _, code in runs) else 0)


if __name__ == "__main__":
    main()
