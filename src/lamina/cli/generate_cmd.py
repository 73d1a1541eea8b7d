"""``lamina generate``: prompts in, predictions out (seed 003's data-file inference).

Input: ``--prompt TEXT`` (repeatable) or ``--input FILE`` read by the shared
reader (``lamina.ie.inputs``): one prompt per line, JSON Lines or a JSON array
of records with ``instruction`` (+ optional ``input``), ``prompt``, IEPile
instructions or plain ``text``. Each prompt is one user message in the chat
template unless ``--no-template``. Output: JSONL records to ``--output``
(resumable, see ``lamina.ie.io``) or to stdout; ``--batch N`` decodes N at a
time on the native engine (``lamina.ie.generation``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lamina.cli.options import (
    ctx_option,
    force_option,
    gpu_layers_option,
    json_option,
    keep_failed_option,
    lora_option,
    resume_option,
    sampling_options,
    sampling_overrides,
    template_option,
    threads_option,
)
from lamina.errors import InputError


@click.command()
@click.argument("model_path", metavar="MODEL.gguf", type=click.Path(dir_okay=False))
@click.option("--prompt", "-p", "prompts", multiple=True, help="Prompt text; repeatable.")
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None,
              help="Prompt file: one per line, or JSON Lines / a JSON array of records with "
                   "instruction (+input), prompt, an IEPile instruction or text.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Predictions JSONL file (default: stdout).")
@template_option
@click.option("--system", "-s", default=None, help="System prompt for every prompt.")
@click.option("--no-template", is_flag=True, help="Use prompts as raw text, not as chat messages.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Prompts decoded together on the native batched engine (greedy answers "
                   "are the same as one at a time).")
@resume_option
@keep_failed_option
@lora_option
@gpu_layers_option
@ctx_option
@threads_option
@sampling_options
@force_option
@json_option
def generate(model_path: str, prompts: tuple[str, ...], input_path: Path | None,
             output: Path | None, template: str | None, system: str | None, no_template: bool,
             batch: int, resume: bool, keep_failed: bool, lora: tuple[str, ...],
             n_gpu_layers: int, n_ctx: int | None, n_threads: int | None, force: bool,
             as_json: bool, **kwargs: Any) -> None:
    """Answer prompts without interaction; predictions as JSONL, with a progress bar."""
    import lamina
    from lamina.ie.generation import generate_iter, run_generate
    from lamina.ie.inputs import read_records
    from lamina.ie.io import JsonlRun
    from lamina.templates import get_template
    from lamina.ui.console import err_console, escape, items_progress

    if bool(prompts) == bool(input_path):
        raise click.UsageError("Give either --prompt TEXT or --input FILE.")
    if resume and output is None:
        raise InputError("--resume needs --output (the file of the run to continue).")
    if keep_failed and not resume:
        raise InputError("--keep-failed only applies with --resume.")
    items: list[Any] = ([{"id": str(i), "kind": "text", "text": p} for i, p in enumerate(prompts)]
                        if prompts else list(read_records(input_path, need="prompt",
                                                          what="input file")))
    if not items:
        raise InputError(f"'{input_path}' contains no prompts.", hint="Put one prompt per line.")
    if template is not None:
        get_template(template)
    run = JsonlRun(items, output, resume=resume, force=force, keep_failed=keep_failed)
    overrides = sampling_overrides(kwargs)
    model = lamina.load(model_path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
                        lora=list(lora), template=template)
    params = model.default_params.replace(**overrides)
    options = dict(batch=batch, system=system, no_template=no_template)

    if not output and len(items) == 1 and not as_json and prompts:
        click.echo(next(generate_iter(model, items, params, **options))[1]["output"])
        return
    if output is None:
        for bad in run.bad:
            err_console.print(f"[yellow]Skipped:[/] {escape(bad.reason)}")
    with items_progress("prompts") as progress:
        task = progress.add_task("Generating", total=len(run.todo))
        try:
            report = run_generate(
                model, run, params, **options,
                emit=lambda rec: click.echo(json.dumps(rec, ensure_ascii=False)),
                on_progress=lambda done, total: progress.update(task, completed=done))
        except BaseException:
            if run.out is not None and run.out.count:
                err_console.print(f"[yellow]Stopped after {run.out.count} records; run the "
                                  "same command with --resume to continue.[/]")
            raise
    if output is not None:
        _summary(report, output)


def _summary(report: dict[str, Any], output: Path) -> None:
    from lamina.ie.io import errors_path
    from lamina.ui.console import err_console, escape

    seconds = report["seconds"]
    rate = report["written"] / seconds if seconds > 0 else 0.0
    parts = [f"[green]Wrote[/] {report['written']} predictions to {escape(str(output))} in "
             f"{seconds:.1f} s ({rate:.2f}/s)"]
    if report["skipped"]:
        parts.append(f"{report['skipped']} already done")
    if report["retried"]:
        parts.append(f"{report['retried']} failed before, tried again")
    if report["failed"]:
        parts.append(f"[red]{report['failed']} failed[/] (see their 'error' field)")
    if report["bad"]:
        parts.append(f"[yellow]{report['bad']} bad input records[/] -> "
                     f"{escape(str(errors_path(output)))}")
    err_console.print(", ".join(parts), highlight=False)
