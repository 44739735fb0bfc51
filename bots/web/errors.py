"""Error answers of the gateway: validation (422), and the catch-all for everything unexpected.

- ``validation_response``: FastAPI's 422 without the ``input`` it would echo (a token sent in
  the wrong field is never sent back) and with every string printable (a lone surrogate in a
  key cannot break the answer).
- ``CatchAll``: the outermost middleware. An exception no route handled becomes a
  ``500 {"detail": ..., "reference": "<id>"}`` (a WebSocket is closed with 1011 and the
  reference), never a dropped connection; the server's own traceback logging is bypassed.
- ``ErrorReporter``: logs each unexpected error once, compactly (type, place, a short plain
  traceback) from a worker thread, so the event loop never renders tracebacks; repeats of the
  same error (same type and place) within ``window`` seconds share its reference and are
  counted, not logged; their number is logged in one line when the window is over.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bots.web.text import printable

log = logging.getLogger("frontdoor.web.errors")

#: Frames of the traceback kept in the log (the innermost ones).
TRACEBACK_FRAMES = 6


class FieldError(BaseModel):
    """One reason an input was refused."""

    loc: list[str | int] = Field(description="Where: body, query, header, then the field path")
    msg: str
    type: str


class ErrorOut(BaseModel):
    """An error answer: ``detail`` says what went wrong (the reasons, for invalid input)."""

    detail: str | list[FieldError]


class LimitedOut(BaseModel):
    """A 429: the reason, the limit that refused, and when to retry (also ``Retry-After``)."""

    detail: str
    limit: str = Field(description="caller, polls, address, sessions or auth_failures")
    retry_after: int


class InternalOut(BaseModel):
    """A 500: nothing about the failure but the reference the log has it under."""

    detail: str
    reference: str


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """pydantic's errors as ``FieldError`` dicts (no input, printable)."""
    out: list[dict[str, Any]] = []
    for error in errors:
        loc = [part if isinstance(part, int) else printable(part) for part in error.get("loc", ())]
        out.append(
            {
                "loc": loc,
                "msg": printable(error.get("msg", "")),
                "type": printable(error.get("type", "")),
            }
        )
    return out


def validation_response(_request: Request, exc: Exception) -> JSONResponse:
    """The 422 of invalid input (FastAPI's shape, without the input)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": field_errors(exc.errors())}, status_code=422)


@dataclass
class _Seen:
    """An error logged in the current window: its reference and the repeats not logged."""

    reference: str
    repeats: int = 0


#: ``("error", reference, exception, where)`` or ``("repeats", reference, kind, count)``
_Job = tuple[str, str, Any, Any]


class _Window(TTLCache[tuple[str, str], _Seen]):
    """The kinds logged in the current window; what leaves it (expired, or evicted when full)
    is kept in ``gone`` until its repeats are logged."""

    def __init__(self, maxsize: int, ttl: float) -> None:
        super().__init__(maxsize, ttl)
        self.gone: list[tuple[tuple[str, str], _Seen]] = []

    def expire(self, time: float | None = None) -> list[tuple[tuple[str, str], _Seen]]:
        expired = list(super().expire(time))
        self.gone.extend(expired)
        return expired

    def popitem(self) -> tuple[tuple[str, str], _Seen]:
        item = super().popitem()
        self.gone.append(item)
        return item


class ErrorReporter:
    """Logs unexpected errors compactly, once per kind per window, from a worker thread.

    A kind is the exception's type and the place it was raised. The first error of a kind is
    logged with a fresh reference; the same kind again within ``window`` seconds answers with
    that same reference (whoever quotes it finds the traceback) and is only counted; the worker
    logs the count in one line once the window is over.
    """

    def __init__(self, window: float = 60.0, logger: logging.Logger | None = None) -> None:
        self.window = window
        self.log = logger or log
        self._recent = _Window(1024, window)
        self._recent_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._flushed: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def report(self, exc: BaseException, where: str) -> str:
        """Note ``exc`` (raised while serving ``where``); return its reference."""
        key = (type(exc).__qualname__, _place(exc))
        with self._recent_lock:
            seen = self._recent.get(key)
            if seen is not None:
                seen.repeats += 1  # a repeat within the window: counted, not logged
                return seen.reference
            reference = uuid.uuid4().hex[:12]
            self._recent[key] = _Seen(reference)
        self._put(("error", reference, exc, where))
        return reference

    def repeats(self, exc_type: type[BaseException]) -> int:
        """How many errors of ``exc_type`` were counted, not logged (in the window)."""
        name = exc_type.__qualname__
        with self._recent_lock:
            return sum(seen.repeats for (kind, _), seen in self._recent.items() if kind == name)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until what was reported so far is logged (tests, shutdown)."""
        if self._thread is None:
            return
        done = self._flushed = threading.Event()
        self._queue.put(None)
        done.wait(timeout)

    def _put(self, job: _Job) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="frontdoor-error-log", daemon=True
                )
                self._thread.start()
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=self.window)
            except queue.Empty:
                job = None
            try:
                if job is not None:
                    self._write(job)
                self._log_repeats()
            except Exception:  # never let reporting fail
                pass
            if job is None and self._flushed is not None:
                self._flushed.set()

    def _log_repeats(self) -> None:
        with self._recent_lock:
            self._recent.expire()
            gone, self._recent.gone = self._recent.gone, []
        for (name, place), seen in gone:
            if seen.repeats:
                self._write(("repeats", seen.reference, f"{name} at {place}", seen.repeats))

    def _write(self, job: _Job) -> None:
        if job[0] == "repeats":
            _, reference, kind, count = job
            self.log.error(
                "unexpected error %s (%s) happened %d more times within %g s",
                reference,
                oneline(str(kind)),
                count,
                self.window,
            )
            return
        _, reference, exc, where = job
        try:  # the frames only: the message, a caller's text perhaps, is on the first line
            frames = traceback.extract_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]
            trace = "Traceback (most recent call last):\n" + "".join(
                traceback.format_list(frames)
            ).rstrip("\n")
        except Exception:
            trace = ""
        self.log.error(
            "unexpected error %s in %s: %s: %s (the same error again within %g s answers "
            "with this reference and is counted, not logged)\n%s",
            reference,
            oneline(str(where)),
            type(exc).__name__,
            oneline(printable(exc)),
            self.window,
            trace,
        )


def oneline(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, its line breaks and other controls escaped (a
    caller's path or message cannot forge log lines)."""
    text = text[:limit]
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _place(exc: BaseException) -> str:
    """Where ``exc`` was raised: the innermost frame's file and line."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


class CatchAll:
    """ASGI middleware: what escapes every handler is a 500 with a reference (HTTP) or a close
    with 1011 and the reference (WebSocket), reported once to ``reporter``."""

    def __init__(self, app: ASGIApp, reporter: ErrorReporter) -> None:
        self.app = app
        self.reporter = reporter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False  # an HTTP answer begun, or a socket already closed

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.close"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            where = f"{scope.get('method', 'WS')} {scope.get('path', '?')}"
            reference = self.reporter.report(exc, where)
            if scope["type"] == "http":
                if not started:
                    await JSONResponse(
                        {
                            "detail": "Sorry, something went wrong on our side; quote the "
                            "reference if you report it.",
                            "reference": reference,
                        },
                        status_code=500,
                    )(scope, receive, send)
                return
            if not started:
                try:
                    await send(
                        {
                            "type": "websocket.close",
                            "code": 1011,
                            "reason": f"internal error, reference {reference}",
                        }
                    )
                except Exception:
                    return


_ANSWERS: dict[int, tuple[type[BaseModel], str]] = {
    400: (ErrorOut, "The request cannot be read"),
    401: (ErrorOut, "No credential, or one that proves nothing (WWW-Authenticate: Bearer)"),
    403: (ErrorOut, "The credential may not do this"),
    404: (ErrorOut, "No such thing"),
    409: (ErrorOut, "The change does not fit the current state (e.g. the hand-off ended)"),
    413: (ErrorOut, "The body is larger than FRONTDOOR_MAX_BODY_BYTES"),
    422: (ErrorOut, "Invalid input: the reasons (without the input), or one sentence"),
    429: (LimitedOut, "Too many requests; retry after Retry-After seconds"),
    500: (InternalOut, "Something failed on our side; quote the reference"),
    502: (ErrorOut, "The service failed to do it; its answer says why"),
    503: (ErrorOut, "The message bus or a service is not reachable; retry after Retry-After"),
    504: (ErrorOut, "No answer in time"),
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route: each status with its body model and meaning."""
    return {code: {"model": _ANSWERS[code][0], "description": _ANSWERS[code][1]} for code in codes}
