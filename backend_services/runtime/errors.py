"""Errors a handler raises on purpose to answer the user (never retried)."""

from __future__ import annotations

from typing import Any

from events.errors import FrontdoorError
from events.payloads import ReplyStatus


class HandlerError(FrontdoorError):
    """A domain error the user should see as it is (e.g. an invalid ticket transition)."""

    def __init__(
        self,
        message: str,
        *,
        status: ReplyStatus = "invalid",
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status: ReplyStatus = status
        self.errors = errors or []


class Denied(HandlerError):
    """The actor may not do this."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status="denied")
