"""Run the app with uvicorn: what ``lamina serve`` does after parsing options.

What a person should see (loading, warnings, the address, the stop) is passed to
``notify(kind, message)`` with kind "status", "warning" or "ready"; the CLI draws
it. Nothing here prints.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lamina.errors import InputError, require
from lamina.server.config import ServerConfig


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(model_path: str | Path, config: ServerConfig, *, n_ctx: int | None = None,
          n_threads: int | None = None, n_gpu_layers: int = 0, lora: Sequence[str] = (),
          template: str | None = None, log_level: str = "warning",
          notify: Callable[[str, str], None] | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Load the model, build the app and serve it until Ctrl-C.

    ``on_ready(url)`` is called (on another thread) once the server accepts
    connections, with the web page's URL: ``lamina ui`` opens it in a browser.
    """
    say = notify or (lambda kind, message: None)
    require("fastapi", "serve")
    require("uvicorn", "serve")
    import socket

    import uvicorn

    from lamina.runtime.model import load
    from lamina.server.app import create_app

    # Fail on a taken port before spending seconds loading a model.
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, config.port))
        except OSError as exc:
            raise InputError(f"Cannot listen on {config.host}:{config.port}: {exc.strerror}.",
                             hint="Choose another --port, or stop the program using it.") from exc

    say("status", f"Loading {Path(model_path).name}...")
    model = load(model_path, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers,
                 lora=lora, template=template)
    if config.max_tokens_cap > model.n_ctx:
        config = _replace(config, max_tokens_cap=model.n_ctx)
    if config.parallel is not None and config.parallel > 1 and not _engine_available():
        say("warning", "--parallel > 1 needs lamina's native batch engine, which is not "
                       "built; serving with 1 slot.")
    app = create_app(model, config)
    if not is_loopback(config.host) and config.api_key is None:
        say("warning", f"listening on {config.host} without an API key: anyone on the "
                       "network can use this model. Set --api-key.")
    url = f"http://{config.host if ':' not in config.host else f'[{config.host}]'}:{config.port}"
    auth = "API key required" if config.api_key else "no API key"
    say("ready", f"Serving {app.state.lamina.name} (template {model.template.name}, "
                 f"ctx {model.n_ctx}) at {url}/v1 - {app.state.lamina.slots.n_slots} slot(s), "
                 f"queue {config.queue}, {auth}; web page "
                 f"{page_url(config.host, config.port)} (Ctrl-C stops)")
    logging.getLogger("lamina.server").setLevel(logging.INFO)
    try:
        server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port,
                                               log_level=log_level, timeout_graceful_shutdown=5))
        stop = server.handle_exit

        def handle_exit(sig: int, frame: Any) -> None:
            app.state.lamina.closing = True
            stop(sig, frame)

        server.handle_exit = handle_exit  # type: ignore[method-assign]
        if on_ready is not None:
            _when_started(server, page_url(config.host, config.port), on_ready)
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its clean shutdown
            say("status", "Server stopped.")
    finally:
        model.close()


def page_url(host: str, port: int) -> str:
    """The web page's URL as a browser on this machine reaches it (a wildcard
    address such as 0.0.0.0 is reached through loopback)."""
    if host in ("0.0.0.0", "", "::"):
        host = "::1" if host == "::" else "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _when_started(server: Any, url: str, on_ready: Callable[[str], None]) -> None:
    """Call ``on_ready(url)`` once uvicorn's ``server.started`` is set."""

    def watch() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        on_ready(url)

    threading.Thread(target=watch, name="lamina-on-ready", daemon=True).start()


def _replace(config: ServerConfig, **changes: Any) -> ServerConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


def _engine_available() -> bool:
    try:
        from lamina.runtime.engine import native_available
    except ImportError:
        return False
    return bool(native_available())
