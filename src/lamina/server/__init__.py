"""lamina's OpenAI-compatible HTTP server (``lamina serve``).

``create_app(model, config)`` builds the FastAPI app on top of the same Python
API the CLI uses (``lamina.runtime.model.Model``); ``serve()`` runs it with
uvicorn. FastAPI is imported only when the server is built, never by
``import lamina``.
"""

from __future__ import annotations

from lamina.server.config import ServerConfig

__all__ = ["ServerConfig"]
