"""Interactive chat in a terminal: streamed Markdown answers, a status line, slash commands.

Input is read with ``input()`` so stdlib readline gives line editing and a
persistent history. A line ending in a backslash continues on the next line,
and a line of three quotes (\"\"\") opens a block that ends at the next one,
for pasting multi-line text.

Ctrl-C during an answer stops that answer (what was shown stays in the
history); Ctrl-C at the prompt clears the line; Ctrl-D or /exit quits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from lamina.errors import LaminaError

if TYPE_CHECKING:  # pragma: no cover
    from lamina.runtime.model import Model
    from lamina.runtime.session import ChatSession

PROMPT = ">>> "
CONTINUE = "... "
BLOCK = '"""'
def _history_file() -> Path:
    return Path(os.environ.get("LAMINA_HISTORY", Path.home() / ".lamina_history"))

HELP: list[tuple[str, str]] = [
    ("/help", "show this help"),
    ("/reset", "start a new conversation (keeps the system prompt)"),
    ("/undo", "remove the last question and its answer"),
    ("/retry", "answer the last question again"),
    ("/system [TEXT]", "show or set the system prompt (/system - to clear it)"),
    ("/params [k=v ...]", "show or change sampling parameters, e.g. /params temperature=0.3"),
    ("/save PATH", "save the conversation as JSON"),
    ("/load PATH", "load a saved conversation"),
    ("/exit", "quit (also Ctrl-D)"),
]


def _setup_readline() -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return
    try:
        readline.read_history_file(_history_file())
    except (OSError, ValueError):
        pass
    readline.set_history_length(1000)

    import atexit

    def save() -> None:
        try:
            readline.write_history_file(_history_file())
        except OSError:
            pass

    atexit.register(save)


class ChatApp:
    """One interactive chat: reads lines, runs slash commands, streams answers."""

    def __init__(self, model: Model, session: ChatSession, console: Console | None = None,
                 read: Callable[[str], str] = input) -> None:
        self.model = model
        self.session = session
        self.console = console or Console()
        self.read = read
        self.session.on_notice = lambda text: self.console.print(f"[yellow]{escape(text)}[/]", highlight=False)

    # ---- input

    def read_message(self) -> str:
        """One message: a line, backslash-continued lines, or a \"\"\" block."""
        first = self.read(PROMPT)
        if first.strip() == BLOCK:
            lines: list[str] = []
            while (line := self.read(CONTINUE)).strip() != BLOCK:
                lines.append(line)
            return "\n".join(lines)
        lines = [first]
        while lines[-1].endswith("\\"):
            lines[-1] = lines[-1][:-1]
            lines.append(self.read(CONTINUE))
        return "\n".join(lines)

    # ---- main loop

    def banner(self) -> None:
        m = self.model
        self.console.print(
            f"[bold]lamina chat[/] · model [cyan]{m.name}[/] · template [cyan]"
            f"{self.session.template.name}[/] · context {m.n_ctx} tokens", highlight=False)
        self.console.print("[dim]Type /help for commands, /exit or Ctrl-D to quit. "
                           'End a line with \\ or use """ for multi-line input.[/]', highlight=False)

    def run(self) -> None:
        if self.read is input:  # a terminal: line editing and a persistent history
            _setup_readline()
        self.banner()
        while True:
            try:
                text = self.read_message()
            except EOFError:
                self.console.print()
                return
            except KeyboardInterrupt:
                self.console.print("\n[dim](Ctrl-C: line cleared; /exit or Ctrl-D quits)[/]")
                continue
            if not text.strip():
                continue
            try:
                if text.startswith("/"):
                    if self.command(text.strip()) is False:
                        return
                else:
                    self.answer(self.session.send(text, stream=True))
            except LaminaError as exc:
                from lamina.ui.console import print_error

                print_error(exc.message, exc.hint, to=self.console)

    def answer(self, pieces: Iterator[str]) -> None:
        """Stream an answer as live Markdown; Ctrl-C stops it and keeps the session.

        While streaming, the tail of the rendered answer is shown (re-rendered at
        most ten times a second, so long answers stay cheap); at the end the whole
        answer is printed once, so the terminal's scrollback holds it intact.

        Ctrl-C only sets a flag that the loop checks after each piece: an exception
        raised at an arbitrary point could cut a terminal write in the middle of a
        UTF-8 character.
        """
        text = ""
        interrupted = False
        started = time.perf_counter()
        last = 0.0
        with _sigint_flag() as stop, \
                Live(_Tail(""), console=self.console, auto_refresh=False, transient=True) as live:
            try:
                for piece in pieces:
                    text += piece
                    if stop.is_set():
                        interrupted = True
                        break
                    now = time.perf_counter()
                    if now - last > 0.1:
                        live.update(_Tail(text), refresh=True)
                        last = now
                interrupted = interrupted or stop.is_set()
            except KeyboardInterrupt:
                interrupted = True
            finally:
                pieces.close()  # type: ignore[attr-defined]
        self.console.print(Markdown(text))
        if interrupted:
            self.console.print("[yellow](answer stopped)[/]", highlight=False)
        self.status(time.perf_counter() - started)

    def status(self, seconds: float) -> None:
        stats = self.model.last_stats
        rate = stats.decode_tokens_per_second
        self.console.print(
            f"[dim]{stats.completion_tokens} tokens · {rate:.1f} tok/s · "
            f"prompt {stats.evaluated_tokens} new + {stats.cached_tokens} cached · "
            f"context {self.session.context_used}/{self.model.n_ctx} · {self.model.name}[/]",
            highlight=False)

    # ---- slash commands

    def command(self, line: str) -> bool:
        """Run one slash command; False means quit."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        s = self.session
        if name in ("/exit", "/quit", "/q"):
            return False
        if name in ("/help", "/?"):
            table = Table(show_header=False, box=None)
            for cmd, what in HELP:
                table.add_row(Text(cmd, style="cyan"), Text(what))
            self.console.print(table)
        elif name == "/reset":
            s.reset()
            self.console.print("[green]New conversation.[/]")
        elif name == "/undo":
            removed = s.undo()
            self.console.print("[green]Removed:[/] " + escape(removed) if removed is not None
                               else "[yellow]Nothing to undo.[/]", highlight=False)
        elif name == "/retry":
            self.answer(s.retry(stream=True))
        elif name == "/system":
            if arg == "-":
                s.system = None
                self.console.print("[green]System prompt cleared.[/]")
            elif arg:
                s.system = arg
                self.console.print("[green]System prompt set.[/]")
            else:
                shown = s.system or f"(none; template default: {s.template.default_system})"
                self.console.print(f"System prompt: {escape(shown)}", highlight=False)
        elif name == "/params":
            if arg:
                s.params = s.params.replace(**_parse_params(arg))
            self._show_params()
        elif name == "/save":
            if not arg:
                raise LaminaError("Usage: /save PATH")
            path = s.save(os.path.expanduser(arg))
            self.console.print(f"[green]Saved[/] {len(s.messages)} messages to {escape(str(path))}",
                               highlight=False)
        elif name == "/load":
            if not arg:
                raise LaminaError("Usage: /load PATH")
            s.load(os.path.expanduser(arg))
            self.console.print(f"[green]Loaded[/] {len(s.messages)} messages from {escape(arg)}",
                               highlight=False)
            for m in s.messages[-2:]:
                self.console.print(f"[dim]{m['role']}:[/] {escape(m['content'][:200])}",
                                   highlight=False)
        else:
            self.console.print(f"[yellow]Unknown command {escape(name)}.[/] Type /help for the list.",
                               highlight=False)
        return True

    def _show_params(self) -> None:
        table = Table(title="Sampling parameters", show_header=False)
        for key, value in self.session.params.as_dict().items():
            table.add_row(key, str(value))
        self.console.print(table)


@contextlib.contextmanager
def _sigint_flag() -> Iterator[threading.Event]:
    """Turn SIGINT into an event while an answer streams (main thread only; elsewhere
    Ctrl-C stays a KeyboardInterrupt)."""
    event = threading.Event()
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: event.set())
    except ValueError:  # not the main thread
        yield event
        return
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


class _Tail:
    """The last screenful of an answer rendered as Markdown (for the live view)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(Markdown(self.text), options, pad=False)
        height = max(1, console.size.height - 2)
        for line in lines[-height:]:
            yield from line
            yield Segment.line()


def _parse_params(arg: str) -> dict[str, object]:
    """``temperature=0.3 top_k=50 stop=Human:`` -> typed values for SamplingParams."""
    import dataclasses

    from lamina.runtime.sampling import SamplingParams

    types = {f.name: f.type for f in dataclasses.fields(SamplingParams)}
    out: dict[str, object] = {}
    for item in arg.split():
        key, eq, value = item.partition("=")
        key = {"temp": "temperature"}.get(key, key)
        if not eq or key not in types:
            raise LaminaError(f"Cannot read '{item}'.",
                              hint=f"Use key=value with keys: {', '.join(types)}.")
        try:
            if key == "stop":
                out[key] = tuple(v for v in value.split(",") if v)
            elif key == "seed":
                out[key] = None if value.lower() in ("none", "") else int(value)
            elif key in ("top_k", "max_tokens"):
                out[key] = int(value)
            else:
                out[key] = float(value)
        except ValueError:
            raise LaminaError(f"'{value}' is not a valid value for {key}.") from None
    return out


def run_pipe(session: ChatSession, stdin: IO[str] | None = None, stdout: IO[str] | None = None,
             whole: bool = False) -> int:
    """Non-interactive chat: each stdin line is one user message (or all of stdin
    is one message with ``whole``); answers are printed as plain text, one per
    message, each followed by a newline. Returns the number of answers."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    lines = [stdin.read()] if whole else stdin
    count = 0
    for line in lines:
        text = line.rstrip("\n")
        if not text.strip():
            continue
        started = False
        for piece in session.send(text, stream=True):
            if not started:  # answers often open with the tokenizer's space
                piece = piece.lstrip()
                started = bool(piece)
            stdout.write(piece)
            stdout.flush()
        stdout.write("\n")
        stdout.flush()
        count += 1
    return count
