"""OpenAI-style error bodies: ``{"error": {"message", "type", "param", "code"}}``.

Clients written for OpenAI (the official SDK, LangChain, web UIs) read these
fields to show the user what went wrong, so every failure, including our own
bugs, leaves the server in this shape and with the right status; a traceback
never reaches the client (it is logged on the server instead).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from lamina.errors import LaminaError, SchemaError, TemplateError

log = logging.getLogger("lamina.server")

#: HTTP status -> OpenAI error ``type``.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """An error answer with an HTTP status; raised anywhere in a route."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, param=self.param, code=self.code)


class ServerBusy(APIError):
    """Every slot is taken and the waiting queue is full: 429 with Retry-After."""

    def __init__(self, retry_after: float, queue: int) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            429, f"The server is busy: all slots are generating and {queue} requests are "
                 f"already waiting. Retry after {seconds} s, or start the server with a "
                 "larger --queue.",
            code="server_busy", headers={"Retry-After": str(seconds)})


class ClientGone(Exception):
    """The client closed the connection; its work is dropped, nothing is sent."""


def error_body(status: int, message: str, *, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def from_lamina_error(exc: LaminaError) -> APIError:
    """A user-caused library error (bad schema, template, prompt too long) is a 400."""
    message = exc.message if exc.hint is None else f"{exc.message} {exc.hint}"
    param = "schema" if isinstance(exc, SchemaError) else None
    if isinstance(exc, TemplateError):
        param = "messages"
    return APIError(400, message, param=param, code=type(exc).__name__)


def _loc_to_param(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts)


def validation_message(errors: list[dict[str, Any]]) -> tuple[int, str, str | None]:
    """Turn pydantic's error list into (status, one readable message, first param)."""
    if not errors:
        return 422, "The request body is not valid.", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return 400, f"The request body is not valid JSON ({detail}). Send a JSON object " \
                    "with Content-Type: application/json.", None
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") in (
            "model_attributes_type", "dict_type", "missing"):
        return 400, "The request body must be a JSON object, sent with " \
                    "Content-Type: application/json.", None
    lines = []
    for err in errors[:5]:
        param = _loc_to_param(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"'{param}': {msg}" if param else msg)
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    param = _loc_to_param(tuple(first.get("loc", ()))) or None
    return 422, "Invalid request: " + "; ".join(lines) + more, param


def error_json(content: dict[str, Any]) -> bytes:
    """An error body as bytes; text that UTF-8 cannot hold is sent as JSON escapes.

    An error message may quote what the client sent, and nothing the client
    sends may turn the error answer itself into a crash.
    """
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace")


#: FastAPI's message when the body is not parseable at all (too deep, not JSON text).
_PARSE_FAILED = "There was an error parsing the body"


class CatchAll:
    """Pure ASGI middleware: a bug in a route answers 500 and the connection lives on.

    Starlette's own last-resort handler re-raises after answering, and uvicorn
    then drops the connection, so a client's keep-alive connection (and every
    request queued on it) would be reset by one failing request. Here the
    exception is logged with its traceback and answered as OpenAI-style JSON;
    if the response had already started (a stream), it is re-raised as before.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise
            log.exception("internal error while serving a request")
            body = error_json(error_body(
                500, f"Internal server error ({type(exc).__name__}). This is a bug in lamina; "
                     "the server log has details."))
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def install_error_handlers(app: Any) -> None:
    """Register handlers so every error leaves the server as OpenAI-style JSON."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    class ErrorResponse(JSONResponse):
        def render(self, content: Any) -> bytes:
            return error_json(content)

    async def api_error(_request: Any, exc: APIError) -> JSONResponse:
        return ErrorResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def lamina_error(_request: Any, exc: LaminaError) -> JSONResponse:
        err = from_lamina_error(exc)
        return ErrorResponse(err.body(), status_code=err.status)

    async def invalid(_request: Any, exc: RequestValidationError) -> JSONResponse:
        status, message, param = validation_message(list(exc.errors()))
        return ErrorResponse(error_body(status, message, param=param, code="invalid_value"),
                             status_code=status)

    async def http_error(_request: Any, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "Unknown URL. lamina serves /v1/models, /v1/completions, "
                        "/v1/chat/completions, /v1/embeddings, /v1/extract, /metrics, "
                        "/health and the web page at /.",
                   405: "Method not allowed for this URL."}.get(exc.status_code, str(exc.detail))
        if exc.status_code == 400 and exc.detail == _PARSE_FAILED:
            message = ("The request body could not be parsed: send one JSON object (nested "
                       "less than about 900 levels deep) with Content-Type: application/json.")
        return ErrorResponse(error_body(exc.status_code, message), status_code=exc.status_code,
                             headers=getattr(exc, "headers", None))

    async def gone(_request: Any, _exc: ClientGone) -> JSONResponse:
        # Nobody reads this; nginx's 499 keeps access logs honest.
        return ErrorResponse(error_body(499, "Client closed the request."), status_code=499)

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(LaminaError, lamina_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientGone, gone)
