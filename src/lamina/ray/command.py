"""The ``--ray`` branch of ``lamina extract``: option checks, the run, the summary lines.

Kept here so that ``extract_cmd`` only gains two options and one call, and the
Ray path reads the same option values the local path does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lamina.errors import InputError


def run_from_cli(*, model: Path, input_path: Path | str | None, text: str | None,
                 output: Path | None, address: str, workers: int, resume: bool, force: bool,
                 options: dict[str, Any], batch: int | None, max_tokens: int,
                 n_threads: int | None,
                 n_ctx: int | None, template: str | None, keep_failed: bool = False) -> None:
    """Run ``lamina extract ... --ray [ADDRESS]`` and print the records-in check."""
    from lamina.ie.schema_split import load_schema
    from lamina.ray.runner import RayExtractOptions, run_extract
    from lamina.ray.worker import ExtractSettings
    from lamina.ui.console import err_console, escape

    if input_path is None or text is not None:
        raise InputError("--ray needs --input FILE (a file, a folder, or a URI Ray Data reads), "
                         "not a TEXT argument.",
                         hint="For one text, drop --ray: lamina extract MODEL.gguf --schema ... TEXT")
    if resume:
        raise InputError("--resume is not supported with --ray.",
                         hint="A Ray run writes its output only when complete; rerun it with --force.")
    opts = dict(options)
    if opts.get("schema") is not None:
        opts["schema"] = load_schema(opts["schema"])  # a schema file is on this machine only
    report = run_extract(RayExtractOptions(
        model=Path(model), input=restore_uri(str(input_path)), output=output, address=address,
        workers=workers, threads=n_threads, n_ctx=n_ctx, template=template, force=force,
        batch_size=max(8, batch or 16),  # one actor call holds a full engine batch
        settings=ExtractSettings(options=opts, batch=batch, max_tokens=max_tokens)))
    pool = f"{report.workers} Ray worker{'s' if report.workers > 1 else ''}"
    per_worker = f"{report.threads} thread{'s' if report.threads > 1 else ''}"
    parts = [f"{report.records_out} docs in {report.seconds:.1f} s "
             f"({report.docs_per_second:.2f} docs/s on {pool} × {per_worker})"]
    if report.failed:
        parts.append(f"[red]{report.failed} failed[/] (see their 'error' field)")
    if report.errors and report.errors_path is not None:
        parts.append(f"[yellow]{report.errors} bad input lines[/] -> "
                     f"{escape(str(report.errors_path))}")
    dest = f"; wrote {escape(str(output))}" if output is not None else ""
    err_console.print(", ".join(parts) + dest, highlight=False)
    err_console.print(report.check, highlight=False, style="green")


def restore_uri(path: str) -> str:
    """Undo what ``pathlib`` does to a URI given as ``--input`` (``s3://b/k`` -> ``s3:/b/k``).

    The option is parsed as a Path for the local reader; Ray Data reads URIs too,
    so the scheme's slashes are put back (``local:///abs`` keeps its third one).
    """
    import re

    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)(.*)$", path)
    if match is None:
        return path
    scheme, rest = match.groups()
    return f"{scheme}:///{rest}" if scheme == "local" else f"{scheme}://{rest}"
