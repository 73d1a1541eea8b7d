"""``lamina serve``: thin click layer over ``lamina.server.runner.serve``."""

from __future__ import annotations

from pathlib import Path

import click

from lamina.cli.options import (
    ctx_option,
    gpu_layers_option,
    lora_option,
    template_option,
    threads_option,
)
from lamina.server.config import DEFAULT_PORT


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default; set --api-key if you open it).")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="TCP port.")
@click.option("--api-key", default=None,
              help="Require 'Authorization: Bearer KEY' on every route but /health "
                   "(default: env LAMINA_API_KEY).")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Slots: requests generating at the same time.")
@click.option("--queue", type=click.IntRange(min=0), default=32, show_default=True,
              help="Requests that may wait for a slot; more get 429 + Retry-After.")
@click.option("--max-tokens", "max_tokens", type=click.IntRange(min=1), default=4096,
              show_default=True, help="Largest max_tokens a request may ask for.")
@click.option("--max-body", "max_body", type=click.IntRange(min=1024), default=2 * 1024 * 1024,
              show_default=True, help="Largest request body in bytes (413 beyond).")
@click.option("--name", "model_name", default=None,
              help="Model id clients use (default: the model's general.name).")
@click.option("--strict-model", is_flag=True,
              help="Answer 404 to requests naming another model (default: any name is "
                   "served by this model, as most OpenAI clients send a default name).")
@click.option("--completions-template", is_flag=True,
              help="Send /v1/completions prompts through the chat template (a request's "
                   "use_chat_template field overrides this).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="warning", show_default=True, help="uvicorn's access/error log level.")
@template_option
@lora_option
@threads_option
@ctx_option
@gpu_layers_option
def serve(model: Path, host: str, port: int, api_key: str | None, parallel: int, queue: int,
          max_tokens: int, max_body: int, model_name: str | None, strict_model: bool,
          completions_template: bool, log_level: str,
          template: str | None, lora: tuple[str, ...], n_threads: int | None,
          n_ctx: int | None, n_gpu_layers: int) -> None:
    """Serve MODEL (a GGUF) with an OpenAI-compatible API (chat, completions, embeddings,
    extraction)."""
    from lamina.server.config import ServerConfig
    from lamina.server.runner import serve as run_server

    config = ServerConfig(host=host, port=port, api_key=ServerConfig.resolve_api_key(api_key),
                          parallel=parallel, queue=queue, max_tokens_cap=max_tokens,
                          max_body_bytes=max_body, model_name=model_name,
                          strict_model=strict_model, completions_template=completions_template)
    run_server(model, config, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
               lora=lora, template=template, log_level=log_level, notify=notify)


def notify(kind: str, message: str) -> None:
    """The server's status lines on stderr: warnings in yellow, the address in green."""
    from lamina.ui.console import err_console, escape

    style = {"warning": "[yellow]Warning:[/] ", "ready": "[green]✓[/] "}.get(kind, "")
    err_console.print(style + escape(message), highlight=False)
