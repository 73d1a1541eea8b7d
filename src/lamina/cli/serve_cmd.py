"""``lamina serve`` and ``lamina ui``: thin click layers over ``lamina.server.runner.serve``.

Both take the same options (defined once in ``server_options``); ``ui`` also
opens the web page in the user's browser once the server answers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lamina.cli.options import (
    ctx_option,
    gpu_layers_option,
    lora_option,
    template_option,
    threads_option,
)
from lamina.server.config import DEFAULT_PORT


def server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """MODEL and every server option, shared by ``serve`` and ``ui``."""
    opts = [
        click.argument("model", type=click.Path(path_type=Path)),
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address to listen on (loopback by default; set --api-key if you "
                          "open it)."),
        click.option("--port", type=int, default=DEFAULT_PORT, show_default=True,
                     help="TCP port."),
        click.option("--api-key", default=None,
                     help="Require 'Authorization: Bearer KEY' on every route but /health and "
                          "the web page's files (default: env LAMINA_API_KEY)."),
        click.option("--parallel", type=click.IntRange(min=1), default=None,
                     help="Slots: requests generating at the same time (default: as many "
                          "sequences of --ctx tokens as fit min(2 GiB, a quarter of free "
                          "memory) of KV cache, 1 to 8)."),
        click.option("--queue", type=click.IntRange(min=0), default=32, show_default=True,
                     help="Requests that may wait for a slot; more get 429 + Retry-After."),
        click.option("--max-tokens", "max_tokens", type=click.IntRange(min=1), default=4096,
                     show_default=True, help="Largest max_tokens a request may ask for."),
        click.option("--max-body", "max_body", type=click.IntRange(min=1024),
                     default=2 * 1024 * 1024, show_default=True,
                     help="Largest request body in bytes (413 beyond)."),
        click.option("--name", "model_name", default=None,
                     help="Model id clients use (default: the model's general.name)."),
        click.option("--strict-model", is_flag=True,
                     help="Answer 404 to requests naming another model (default: any name is "
                          "served by this model, as most OpenAI clients send a default name)."),
        click.option("--completions-template", is_flag=True,
                     help="Send /v1/completions prompts through the chat template (a request's "
                          "use_chat_template field overrides this)."),
        click.option("--log-level",
                     type=click.Choice(["critical", "error", "warning", "info", "debug"]),
                     default="warning", show_default=True, help="uvicorn's access/error log level."),
        template_option, lora_option, threads_option, ctx_option, gpu_layers_option,
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _run(model: Path, host: str, port: int, api_key: str | None, parallel: int | None,
         queue: int, max_tokens: int, max_body: int, model_name: str | None, strict_model: bool,
         completions_template: bool, log_level: str,
         template: str | None, lora: tuple[str, ...], n_threads: int | None,
         n_ctx: int | None, n_gpu_layers: int,
         on_ready: Callable[[str], None] | None = None) -> None:
    from lamina.server.config import ServerConfig
    from lamina.server.runner import serve as run_server

    config = ServerConfig(host=host, port=port, api_key=ServerConfig.resolve_api_key(api_key),
                          parallel=parallel, queue=queue, max_tokens_cap=max_tokens,
                          max_body_bytes=max_body, model_name=model_name,
                          strict_model=strict_model, completions_template=completions_template)
    run_server(model, config, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
               lora=lora, template=template, log_level=log_level, notify=notify,
               on_ready=on_ready)


def notify(kind: str, message: str) -> None:
    """The server's status lines on stderr: warnings in yellow, the address in green."""
    from lamina.ui.console import err_console, escape

    style = {"warning": "[yellow]Warning:[/] ", "ready": "[green]✓[/] "}.get(kind, "")
    err_console.print(style + escape(message), highlight=False)


@click.command()
@server_options
def serve(**kwargs: Any) -> None:
    """Serve MODEL (a GGUF) with an OpenAI-compatible API (chat, completions, embeddings,
    extraction) and a web page at / for chat and extraction."""
    _run(**kwargs)


@click.command()
@server_options
def ui(**kwargs: Any) -> None:
    """Serve MODEL like `lamina serve` and open its web page (chat, instruction + input,
    extraction) in your browser."""

    def open_page(url: str) -> None:
        import webbrowser

        if not webbrowser.open(url):
            notify("warning", f"no browser found here: open {url} yourself.")

    _run(**kwargs, on_ready=open_page)
