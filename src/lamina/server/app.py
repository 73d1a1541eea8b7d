"""The FastAPI app: state, API-key check, body-size cap, error handlers, routes, web page.

``create_app`` takes an already loaded ``Model`` so tests, the benchmark and
``lamina serve`` build the very same app; ``serve`` adds uvicorn around it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.server.backend import Backend, make_backend
from lamina.server.bodycheck import check_body
from lamina.server.config import ServerConfig
from lamina.server.errors import APIError, CatchAll, error_body, install_error_handlers
from lamina.server.slots import SlotPool

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from lamina.runtime.model import Model
    from lamina.server.metrics import Metrics

log = logging.getLogger("lamina.server")

#: Routes anyone may call without the API key: /health (load balancers, `lamina serve`
#: checks) and the web page's static files, which hold no data and ask for the key
#: themselves before calling /v1.
PUBLIC_PATHS = frozenset({"/health", "/"})
PUBLIC_PREFIXES = ("/ui/",)


@dataclass
class ServerState:
    """Everything a route needs: the model, its names, the slots, the limits."""

    model: Model
    config: ServerConfig
    slots: SlotPool
    backend: Backend
    name: str
    aliases: frozenset[str]
    metrics: Metrics
    started: int = field(default_factory=lambda: int(time.time()))
    #: Set on Ctrl-C/SIGTERM: open streams end at their next piece so the
    #: server stops within uvicorn's graceful-shutdown time.
    closing: bool = False

    def check_model(self, requested: str | None, lookup: bool = False) -> None:
        """404 for a model name this server does not serve (empty/None means ours).

        With one model served, a request naming any model is answered by it
        (OpenAI clients send a default name such as "gpt-3.5-turbo"), unless
        ``--strict-model``; ``lookup`` (GET /v1/models/{id}) always checks,
        since there the name is the question.
        """
        if not (lookup or self.config.strict_model):
            return
        if requested and requested not in self.aliases:
            raise APIError(404, f"The model '{requested}' does not exist on this server; it "
                                f"serves '{self.name}' (see GET /v1/models).",
                           param="model", code="model_not_found")


def _aliases(model: Model, name: str) -> frozenset[str]:
    path = Path(getattr(model, "path", name))
    names = {name, str(getattr(model, "name", name)), path.name, path.stem, str(path)}
    return frozenset(n for n in names if n)


class GuardMiddleware:
    """Pure ASGI middleware: API key check, request-body size cap, body text check.

    Pure ASGI (not BaseHTTPMiddleware) so streamed responses and client
    disconnects pass through untouched. The body is read here, up to the cap,
    and replayed to the app, so an oversized or endless body is refused with
    413, and one that is not UTF-8 or holds lone surrogates with 400
    (``bodycheck``), before any route parses it.
    """

    def __init__(self, app: Any, api_key: str | None, max_body: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body = max_body

    async def _reply(self, send: Any, status: int, message: str, code: str,
                     headers: list[tuple[bytes, bytes]] | None = None,
                     param: str | None = None) -> None:
        body = json.dumps(error_body(status, message, param=param, code=code)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *(headers or [])]})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: dict[str, Any]) -> bool:
        path = scope["path"]
        if self.api_key is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) \
                or scope["method"] == "OPTIONS":
            return True
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.api_key.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await self._reply(send, 401, "Missing or wrong API key. Send the header "
                                         "'Authorization: Bearer <key>' with the key the "
                                         "server was started with (--api-key or LAMINA_API_KEY).",
                              "invalid_api_key", [(b"www-authenticate", b"Bearer")])
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        too_big = (f"The request body is larger than this server accepts "
                   f"({self.max_body} bytes). Send less text per request.")
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_body:
            await self._reply(send, 413, too_big, "request_too_large")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._reply(send, 413, too_big, "request_too_large")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        bad_text = check_body(b"".join(chunks))
        if bad_text is not None:
            await self._reply(send, bad_text.status, bad_text.message, bad_text.code or "",
                              param=bad_text.param)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(model: Model, config: ServerConfig | None = None) -> FastAPI:
    """The OpenAI-compatible app serving ``model`` with ``config``'s limits."""
    from lamina.errors import require

    require("fastapi", "serve")
    require("prometheus_client", "serve")
    from fastapi import FastAPI

    from lamina.server.metrics import Metrics, MetricsMiddleware
    from lamina.server.page import install_page
    from lamina.server.routes import router

    config = config or ServerConfig()
    name = config.model_name or str(getattr(model, "name", None) or Path(model.path).stem)
    backend = make_backend(model, config.parallel)
    slots = SlotPool(backend.parallel, config.queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        # Slot threads are left to finish: uvicorn cancels open streams only after
        # this point and their cleanup still needs the threads to close the model's
        # generators; idle threads end with the interpreter.
        backend.close()

    app = FastAPI(title="lamina", summary="OpenAI-compatible API for a local GGUF model",
                  docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    metrics = Metrics(slots)
    app.state.lamina = ServerState(model=model, config=config, slots=slots, backend=backend,
                                   name=name, aliases=_aliases(model, name), metrics=metrics)
    install_error_handlers(app)
    app.include_router(router)
    install_page(app)
    app.add_middleware(GuardMiddleware, api_key=config.api_key, max_body=config.max_body_bytes)
    app.add_middleware(CatchAll)  # a bug answers 500 and keeps the connection
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts every answer
    return app
