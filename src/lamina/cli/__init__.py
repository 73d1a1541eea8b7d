"""The ``lamina`` command: one click group whose subcommands load lazily.

Each subcommand lives in its own small module and is imported only when it is
run (or when ``--help`` lists them), so ``lamina chat`` never pays for torch or
FastAPI. The table below is the single place where subcommands are registered.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from lamina import __version__

# name -> "module:attribute" (module relative to lamina.cli)
COMMANDS: dict[str, str] = {
    "convert": "convert_cmd:convert",
    "merge": "convert_cmd:merge",
    "checksum": "convert_cmd:checksum",
    "quantize": "quantize_cmd:quantize",
    "build": "quantize_cmd:build",
    "verify": "quantize_cmd:verify",
    "info": "quantize_cmd:info",
    "chat": "chat_cmd:chat",
    "generate": "generate_cmd:generate",
    "templates": "templates_cmd:templates",
    "extract": "extract_cmd:extract",
    "eval": "eval_cmd:eval_command",
    "ie": "ie_cmd:ie",
    "serve": "serve_cmd:serve",
    "ui": "serve_cmd:ui",
    "demo": "demo_cmd:demo",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attr = spec.split(":")
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{module_name}":
                return None  # command not shipped in this build
            raise
        return getattr(module, attr, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lamina")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """lamina: merge, quantize, chat with, extract with and serve Chinese LLaMA/Alpaca models."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI and turn user errors into one red line, no traceback."""
    from lamina.cli.errors import run_cli

    return run_cli(cli, argv)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
