"""Edge limits: message length, request body size; security headers (rates: ``ratelimit``)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bots.web.jsonbody import DEFAULT_MAX_DEPTH, JsonTooDeep, parse_json
from events.errors import FrontdoorError


class MessageTooLong(FrontdoorError):
    """A message exceeds the length limit."""


def check_length(text: str, limit: int) -> None:
    """Raise ``MessageTooLong`` with the reason when ``text`` is longer than ``limit``."""
    if len(text) > limit:
        raise MessageTooLong(f"message is {len(text)} characters; the limit is {limit}")


class BodySizeLimit:
    """ASGI middleware: answer 413 when an HTTP request body is larger than ``max_bytes``, and
    422 when a JSON body nests deeper than ``max_depth`` (before any route parses it).

    A JSON body is one sent as ``application/json`` (or ``+json``) or with no content type
    (FastAPI parses those as JSON too); others (forms) pass as they are.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type: bytes | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
            elif name == b"content-type":
                content_type = value
        # Read the body up to the limit first (a length header may lie), then replay it.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            if len(body) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        if body and _is_json(content_type):
            try:
                parse_json(bytes(body), self.max_depth)
            except JsonTooDeep as exc:
                await JSONResponse({"detail": str(exc)}, status_code=422)(scope, receive, send)
                return
            except ValueError:
                pass  # not JSON: the route says so in its own words
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body exceeds {self.max_bytes} bytes"}, status_code=413
        )
        await response(scope, receive, send)


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def csp(frame_ancestors: str) -> str:
    """The Content-Security-Policy of the HTML pages."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


class SecurityHeaders:
    """ASGI middleware: security headers on every response, a CSP on HTML ones."""

    def __init__(self, app: ASGIApp, frame_ancestors: str = "'self'") -> None:
        self.app = app
        self.policy = csp(frame_ancestors)
        self.same_origin_only = frame_ancestors.strip() == "'self'"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                content_type = headers.get("content-type", "")
                if content_type.startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", self.policy)
                    if self.same_origin_only:
                        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
            await send(message)

        await self.app(scope, receive, send_with_headers)
