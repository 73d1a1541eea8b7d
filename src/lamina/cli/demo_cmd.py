"""``lamina demo``: the whole product on this machine in about a minute.

Parses the options, runs :func:`lamina.demo.job.run_demo`, and draws its stages:
a training progress bar, the real ``lamina build`` tables, the streamed chat
answer and the extraction result. Nothing is downloaded. The GGUF stays in the
work folder for the commands the final panel suggests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lamina.cli.options import threads_option


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("lamina-demo"), show_default=True,
              help="Folder for the demo model (created if missing).")
@click.option("--keep", is_flag=True,
              help="Also keep the HF base and LoRA folders (by default only the GGUF stays).")
@threads_option
def demo(workdir: Path, keep: bool, n_threads: int | None) -> None:
    """Build, quantize, verify, chat and extract with a tiny model made on the spot."""
    from rich.panel import Panel
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from lamina.cli.quantize_cmd import build_with_progress, render_build
    from lamina.demo.job import DemoHooks, DemoOptions, run_demo
    from lamina.ui.console import console, err_console, escape

    training = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} steps, loss {task.fields[loss]}"),
                        TimeElapsedColumn(), console=err_console, transient=True)
    task = training.add_task("Training the Alpaca-like LoRA", total=None, loss="-")

    def on_train_step(step: int, total: int, loss: float) -> None:
        if not training.live.is_started:
            training.start()
        training.update(task, completed=step, total=total, loss=f"{loss:.4f}")

    def on_family(family: Any) -> None:
        training.stop()
        console.print(f"base  [cyan]{escape(str(family.base))}[/]\n"
                      f"LoRA 1 [cyan]{escape(str(family.lora_plus))}[/] (extends the vocabulary)\n"
                      f"LoRA 2 [cyan]{escape(str(family.lora_alpaca))}[/] "
                      "(instruction-tuned on a few answers)")

    def build(opts: Any) -> Any:
        report = build_with_progress(opts)
        render_build(report, opts.intermediate)
        return report

    streaming = {"on": False}

    def on_stage(number: int, title: str) -> None:
        if streaming["on"]:  # end the streamed answer's line
            console.print()
            streaming["on"] = False
        console.rule(f"[bold]{number}. {title}")

    def on_question(question: str) -> None:
        console.print(f"[bold green]You:[/] {question}")
        console.print("[bold blue]lamina:[/] ", end="")
        streaming["on"] = True

    def on_extracted(text: str, schema: list[str], result: Any) -> None:
        console.print(f"[bold]input:[/] {text}\n[bold]schema:[/] "
                      f"{json.dumps(schema, ensure_ascii=False)}")
        console.print_json(json.dumps(result, ensure_ascii=False), indent=None)

    try:
        report = run_demo(DemoOptions(workdir=workdir, keep=keep, n_threads=n_threads), DemoHooks(
            on_stage=on_stage,
            on_train_step=on_train_step, on_family=on_family, build=build,
            on_question=on_question,
            on_piece=lambda piece: console.print(piece, end="", highlight=False, markup=False),
            on_extracted=on_extracted))
    finally:
        training.stop()
    steps = "\n".join(f"  {escape(command)}" for command in report.next_commands)
    console.print(Panel.fit(
        f"Demo finished in {report.seconds:.0f} s. Your model: [cyan]{report.model}[/]\n\n"
        f"Next:\n{steps}", title="lamina demo", border_style="green"))
