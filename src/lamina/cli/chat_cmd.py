"""``lamina chat``: thin click layer over ``lamina.load`` + ``ChatSession`` + the TUI."""

from __future__ import annotations

import sys
from typing import Any

import click

from lamina.cli.options import (
    ctx_option,
    gpu_layers_option,
    lora_option,
    sampling_options,
    sampling_overrides,
    template_option,
    threads_option,
)


@click.command()
@click.argument("model_path", metavar="MODEL.gguf", type=click.Path(dir_okay=False))
@template_option
@click.option("--system", "-s", default=None, help="System prompt (default: the template's).")
@lora_option
@gpu_layers_option
@ctx_option
@threads_option
@sampling_options
@click.option("--whole", is_flag=True,
              help="With piped stdin: send all of it as one message (default: one per line).")
def chat(model_path: str, template: str | None, system: str | None, lora: tuple[str, ...],
         n_gpu_layers: int, n_ctx: int | None, n_threads: int | None, whole: bool,
         **kwargs: Any) -> None:
    """Chat with a GGUF model in the terminal (multi-turn, streamed Markdown).

    When stdin is not a terminal, each input line is one message of the same
    conversation and the answers are printed as plain text, one per line.
    """
    import lamina
    from lamina.templates import get_template

    overrides = sampling_overrides(kwargs)
    if template is not None:
        get_template(template)  # fail on a typo before the model loads
    model = lamina.load(model_path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
                        lora=list(lora), template=template)
    session = model.session(system=system)
    if overrides:
        session.params = session.params.replace(**overrides)
    if not sys.stdin.isatty():
        from lamina.ui.tui import run_pipe

        run_pipe(session, whole=whole)
        return
    from lamina.ui.tui import ChatApp

    ChatApp(model, session).run()
