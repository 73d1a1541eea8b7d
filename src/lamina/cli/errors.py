"""How the CLI ends: user errors as one clear message, never a traceback.

``LaminaError`` means the user can fix it (the message says how). Ctrl-C ends
with exit code 130. Anything else is a bug: one line plus a hint to rerun with
``--debug``, which shows the traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from lamina.errors import LaminaError


def _wants_debug(argv: list[str]) -> bool:
    return "--debug" in argv


def print_error(message: str, hint: str | None = None) -> None:
    """lamina.ui.console.print_error, imported only when there is an error to show
    (Rich's console costs start-up time every command would pay)."""
    from lamina.ui.console import print_error as show

    show(message, hint)


def run_cli(group: click.Group, argv: list[str] | None = None) -> Any:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _wants_debug(args)
    from lamina.cli.leftovers import leftover_notice

    try:
        with leftover_notice():  # its line comes before an error message, not after
            return group.main(args=args, prog_name="lamina", standalone_mode=False)
    except click.exceptions.Abort:
        print_error("Interrupted.")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except LaminaError as exc:
        if debug:
            raise
        print_error(exc.message, exc.hint)
        sys.exit(1)
    except KeyboardInterrupt:
        if debug:
            raise
        print_error("Interrupted.")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug, not a user error
        if debug:
            raise
        print_error(
            f"Internal error: {type(exc).__name__}: {exc}",
            "This is a bug in lamina. Rerun with --debug for the traceback and report it.",
        )
        sys.exit(2)
