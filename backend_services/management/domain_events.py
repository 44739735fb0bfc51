"""Payloads of the management service's domain events on ``FD_EVENTS``.

Every ticket event carries a snapshot (number, subject, status, priority) so readers such as the
analysis service need no second lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TicketEvent(_Event):
    """Common part of every ``ticket.*`` event."""

    ticket: int
    subject: str
    status: str
    priority: str
    requester_email: str
    assignee: str | None = None


class TicketCreated(TicketEvent):
    """``ticket.created``"""

    channel: str
    tags: list[str] = Field(default_factory=list)


class TicketUpdated(TicketEvent):
    """``ticket.updated``: ``changes`` is field -> [old, new]."""

    changes: dict[str, list[Any]]


class TicketStatusChanged(TicketEvent):
    """``ticket.status_changed``"""

    old_status: str
    new_status: str


class TicketCommented(TicketEvent):
    """``ticket.commented``: ``body`` only for a public comment (never an internal note's), so
    the front door can tell the requester what was said."""

    comment_id: int
    public: bool
    author: str
    by_staff: bool
    author_name: str | None = None
    body: str | None = None


class TicketAssigned(TicketEvent):
    """``ticket.assigned``"""

    previous_assignee: str | None = None


class TicketEscalated(TicketEvent):
    """``ticket.escalated``: to a human and/or a higher priority."""

    level: int
    old_priority: str
    reason: str = ""
    to: str | None = None


class TicketMerged(TicketEvent):
    """``ticket.merged``: ``ticket`` (the duplicate) went into ``into``."""

    into: int


class TicketClosed(TicketEvent):
    """``ticket.closed``"""


class TicketCsatRated(TicketEvent):
    """``ticket.csat``"""

    score: int = Field(ge=1, le=5)
    comment: str | None = None


class TicketSlaBreached(TicketEvent):
    """``ticket.sla_breached``: a target (first response or resolution) was missed."""

    kind: Literal["first_response", "resolution"]
    due_at: datetime
    detected_at: datetime


class UserRolesChanged(_Event):
    """``user.roles_changed``"""

    user: str
    user_id: int
    old_roles: list[str]
    new_roles: list[str]
    identities: list[str] = Field(default_factory=list)


class PrivacyErased(_Event):
    """``privacy.erased``: the audit event of an erasure. Who erased is the envelope's actor and
    when its ``occurred_at``; whom is only the erasure's ``reference`` (the operator files it
    with the request); the rest are counts. Never a name, an address, an id or a text."""

    what: Literal["user", "requester", "guest"]
    reference: str
    tickets: int
    comments: int
    anonymised: int
    user_record: bool
    conversations: int = 0
    events: int = 0


#: Event type -> payload model (for docs and schema snapshots).
EVENT_TYPES: dict[str, type[BaseModel]] = {
    "ticket.created": TicketCreated,
    "ticket.updated": TicketUpdated,
    "ticket.status_changed": TicketStatusChanged,
    "ticket.commented": TicketCommented,
    "ticket.assigned": TicketAssigned,
    "ticket.escalated": TicketEscalated,
    "ticket.merged": TicketMerged,
    "ticket.closed": TicketClosed,
    "ticket.csat": TicketCsatRated,
    "ticket.sla_breached": TicketSlaBreached,
    "user.roles_changed": UserRolesChanged,
    "privacy.erased": PrivacyErased,
}
