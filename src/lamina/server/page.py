"""The web page that ``lamina serve`` shows at ``/``: chat, instruction + input, extraction.

The page is plain static files in ``lamina/server/web`` (HTML, CSS and ES
modules, no build step), shipped inside the package so it works offline. It
calls the same /v1 routes as any other client, so it can do nothing an API
client cannot. The files are public (the API key guards /v1, and the page asks
for it); a Content-Security-Policy limits the page to this server, so no asset
or request can leave for a CDN or another host.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

#: Where the page's files live inside the installed package.
WEB_DIR = Path(__file__).with_name("web")
#: URL prefix of the page's assets (index.html refers to them as /ui/...).
ASSET_URL = "/ui"

#: Only this server: scripts, styles and fetches; images also from data:/blob: URLs.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: Revalidate every time (cheap with ETags), so an upgraded lamina never runs stale JS.
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def install_page(app: FastAPI) -> None:
    """Add ``GET /`` (the page) and ``/ui/*`` (its assets) to ``app``."""
    from fastapi.responses import FileResponse
    from starlette.staticfiles import StaticFiles

    class Assets(StaticFiles):
        def file_response(self, *args: Any, **kwargs: Any) -> Any:
            response = super().file_response(*args, **kwargs)
            response.headers.update(HEADERS)
            return response

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8",
                            headers=HEADERS)

    app.mount(ASSET_URL, Assets(directory=WEB_DIR), name="ui")
