"""``/docs`` without a CDN, under the pages' CSP, and a Bearer guard for operational routes.

Swagger UI's assets come from the ``fastapi-offline`` package (``swagger-ui-bundle.js``,
``swagger-ui.css``), served under ``/docs/assets``; the page (``static/docs.html``) loads them
and its start-up code from a file (``/docs/init.js``), so ``script-src 'self'`` holds: no
inline script, nothing from another origin. ``FRONTDOOR_DOCS=off`` serves neither ``/docs``
nor ``/openapi.json``.
"""

from __future__ import annotations

import hmac
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

#: Swagger UI's files, as the fastapi-offline package ships them.
SWAGGER_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def add_docs(app: FastAPI, static_dir: Path) -> None:
    """Serve ``/docs`` (Swagger UI of ``app.openapi_url``) from local files."""
    page, init = static_dir / "docs.html", static_dir / "docs-init.js"
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(page, media_type="text/html; charset=utf-8")

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_init() -> FileResponse:
        return FileResponse(init, media_type="text/javascript; charset=utf-8")


class BearerProtected:
    """ASGI wrapper: ``app`` only for ``Authorization: Bearer <token>``, else a 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sent = dict(scope.get("headers", ())).get(b"authorization", b"")
            if not hmac.compare_digest(sent, self._expected):
                response = JSONResponse(
                    {"detail": "This route needs 'Authorization: Bearer <metrics token>'."},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
