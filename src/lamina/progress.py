"""How libraries report long work without drawing anything themselves.

A job that streams gigabytes (convert, merge, checksum, build) takes a
``TaskProgress``: it adds one task with a total and advances it as bytes go by.
Rich's ``Progress`` has exactly this shape, so the CLI passes its bar
(:func:`lamina.ui.console.bytes_progress`); tests and Python users pass any
object with these two methods, or None. Nothing below :mod:`lamina.ui` imports Rich.
"""

from __future__ import annotations

from typing import Any, Protocol


class TaskProgress(Protocol):
    """The two calls a job makes on its progress reporter."""

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> Any:
        """Start a task of ``total`` units; returns the id to advance."""
        ...

    def advance(self, task_id: Any, advance: float = 1) -> None:
        """``advance`` more units of the task are done."""
        ...
