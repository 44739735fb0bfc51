"""Domain errors of the management service (answered to the user, never retried)."""

from __future__ import annotations

from backend_services.runtime import Denied, HandlerError

__all__ = ["Conflict", "Denied", "HandlerError", "NotFound"]


class NotFound(HandlerError):
    """The ticket/user/key asked for does not exist (or the actor may not see it)."""


class Conflict(HandlerError):
    """The change clashes with existing data (taken handle, linked identity, last admin...)."""
