"""One Rich console and the progress-bar styles every command shares.

Progress goes to stderr so that stdout stays clean for ``--json`` output and
pipes; tables people compare go to stdout.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def print_error(message: str, hint: str | None = None, to: Console | None = None) -> None:
    """Red 'Error:' line (stderr by default), with an optional dimmed hint.

    Both are shown as written: they name files and options ('lamina[serve]',
    'out[2].jsonl') that Rich would otherwise take for markup, and drop or fail on.
    """
    out = to or err_console
    out.print(f"[bold red]Error:[/] {escape(message)}", highlight=False)
    if hint:
        out.print(f"[dim]{escape(hint)}[/]", highlight=False)


def bytes_progress(transient: bool = False) -> Progress:
    """Progress bar measured in bytes (conversion, merging, quantizing)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


class RateColumn(ProgressColumn):
    """Items per second (Rich's own speed column is for bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"-- {self.unit}/s", style="cyan")
        return Text(f"{speed:.2f} {self.unit}/s", style="cyan")


def items_progress(unit: str = "docs", transient: bool = False) -> Progress:
    """Progress bar measured in items (documents, prompts), with rate and ETA."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


