"""Ticket inputs and outputs (validated on all three doors; outputs carry ``reply_text``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from backend_services.management.lifecycle import Priority, Status, label

_TAG = r"^[a-z0-9][a-z0-9_:-]{0,63}$"
#: The largest row number or offset the databases hold (PostgreSQL ``integer``); larger ones
#: are invalid input, not a database error.
MAX_ID = 2**31 - 1


def _ticket_number(value: Any) -> Any:
    """Accept ``42``, ``"42"`` and ``"#42"``."""
    if isinstance(value, str):
        value = value.strip().lstrip("#").strip()
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class TicketRef(_In):
    """Which ticket: its number (``42`` or ``"#42"``)."""

    ticket: int = Field(ge=1, le=MAX_ID, description="Ticket number, e.g. 42 or '#42'")

    _num = field_validator("ticket", mode="before")(_ticket_number)


class TicketCreate(_In):
    """Open a ticket."""

    subject: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20000)
    requester_email: EmailStr | None = Field(
        default=None, description="Who needs help; default: the caller's registered email"
    )
    requester_name: str | None = Field(default=None, max_length=200)
    priority: Priority = "normal"
    tags: list[str] = Field(default_factory=list, max_length=20)

    _prio = field_validator("priority", mode="before")(_lower)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [t for t in value.replace(",", " ").split() if t]
        return [t.strip().lower() for t in value] if isinstance(value, list) else value

    @field_validator("tags")
    @classmethod
    def _tag_pattern(cls, value: list[str]) -> list[str]:
        import re

        bad = [t for t in value if not re.match(_TAG, t)]
        if bad:
            raise ValueError(f"invalid tags {bad}: use letters, digits, '_', '-', ':'")
        return sorted(set(value))


class TicketSearch(_In):
    """Find tickets. Plain users only ever see their own."""

    status: list[Status] | None = Field(default=None, description="One or more statuses")
    priority: list[Priority] | None = None
    assignee: str | None = Field(
        default=None, description="Handle or email of the agent, 'me', or 'none' (unassigned)"
    )
    requester: str | None = Field(default=None, description="Requester email (or part of it)")
    text: str | None = Field(default=None, max_length=200, description="Words in subject/body")
    tag: str | None = None
    sla_due_within_minutes: int | None = Field(
        default=None,
        ge=0,
        le=60 * 24 * 30,
        description="Only unsolved tickets whose next SLA target (first response, else "
        "resolution) is due within this many minutes, or already breached",
    )
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=MAX_ID)

    @field_validator("status", "priority", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        return [_lower(v) for v in value] if isinstance(value, list) else value


class TicketUpdate(TicketRef):
    """Change fields of a ticket (agents)."""

    subject: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20000)
    priority: Priority | None = None
    status: Status | None = None
    note: str | None = Field(default=None, max_length=2000, description="Why (kept in history)")

    _lower = field_validator("priority", "status", mode="before")(_lower)


class TicketAssign(TicketRef):
    """Assign a ticket to an agent (handle, email or 'me'); ``null`` unassigns."""

    assignee: str | None = Field(default=None, max_length=320)


class TicketCommentIn(TicketRef):
    """Add a public reply, or an internal note (``public: false``, agents only)."""

    body: str = Field(min_length=1, max_length=20000)
    public: bool = True


class TicketTagIn(TicketRef):
    """Add and/or remove tags."""

    add: list[str] = Field(default_factory=list, max_length=20)
    remove: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("add", "remove")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        import re

        value = [t.strip().lower() for t in value]
        bad = [t for t in value if not re.match(_TAG, t)]
        if bad:
            raise ValueError(f"invalid tags {bad}: use letters, digits, '_', '-', ':'")
        return sorted(set(value))


class TicketEscalate(TicketRef):
    """Escalate: one priority up (unless ``priority`` is given) and, optionally, to an agent."""

    reason: str = Field(default="", max_length=2000)
    to: str | None = Field(default=None, max_length=320, description="Agent handle or email")
    priority: Priority | None = None

    _prio = field_validator("priority", mode="before")(_lower)


class TicketMerge(TicketRef):
    """Merge the duplicate ``ticket`` into ``into`` (the duplicate is closed)."""

    into: int = Field(ge=1, le=MAX_ID)

    _into = field_validator("into", mode="before")(_ticket_number)


class TicketClose(TicketRef):
    """Close a ticket (optionally with a last comment)."""

    comment: str | None = Field(default=None, max_length=20000)


class TicketReopen(TicketRef):
    """Reopen a solved or closed ticket."""

    comment: str | None = Field(default=None, max_length=20000)


class TicketCsat(TicketRef):
    """Rate the support of a solved or closed ticket, 1 (bad) to 5 (great)."""

    score: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class CommentOut(BaseModel):
    """A comment as shown to the reader."""

    id: int
    author: str
    author_name: str | None
    public: bool
    body: str
    created_at: datetime


class TicketOut(BaseModel):
    """A ticket as shown to the reader (requesters never see internal notes)."""

    number: int
    subject: str
    description: str
    status: Status
    priority: Priority
    requester_email: str
    requester_name: str | None
    assignee: str | None
    tags: list[str]
    escalation_level: int
    merged_into: int | None
    csat_score: int | None
    created_at: datetime
    updated_at: datetime
    first_response_due_at: datetime
    resolution_due_at: datetime
    first_responded_at: datetime | None
    solved_at: datetime | None
    closed_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool
    comments: list[CommentOut] = Field(default_factory=list)
    message: str | None = Field(default=None, description="What the action did, for the user")

    def status_line(self) -> str:
        """``Ticket #12 is open: VPN drops (priority high).``"""
        return (
            f"Ticket #{self.number} is {label(self.status)}: {self.subject} "
            f"(priority {self.priority})."
        )

    def reply_text(self) -> str:
        """The action's message followed by the ticket's status line."""
        line = self.status_line()
        return f"{self.message} {line}" if self.message else line


class TicketSummary(BaseModel):
    """One line of a ticket list."""

    number: int
    subject: str
    status: Status
    priority: Priority
    requester_email: str
    assignee: str | None
    updated_at: datetime
    sla_due_at: datetime | None = Field(
        default=None, description="The next SLA target: first response, else resolution"
    )


class TicketList(BaseModel):
    """A page of tickets."""

    items: list[TicketSummary]
    total: int

    def reply_text(self) -> str:
        """``2 tickets: #1 VPN drops (open, high); #2 ...``"""
        if not self.items:
            return "No tickets match."
        lines = "; ".join(
            f"#{t.number} {t.subject} ({label(t.status)}, {t.priority})" for t in self.items
        )
        more = (
            f" (showing {len(self.items)} of {self.total})" if self.total > len(self.items) else ""
        )
        noun = "ticket" if self.total == 1 else "tickets"
        return f"{self.total} {noun}{more}: {lines}."


class HistoryEntry(BaseModel):
    """One change: who, when, what."""

    at: datetime
    actor: str
    actor_name: str | None
    action: str
    changes: dict[str, Any]
    note: str | None


class TicketHistoryOut(BaseModel):
    """The full history of a ticket, oldest first."""

    number: int
    entries: list[HistoryEntry]

    def reply_text(self) -> str:
        """One line per change."""
        lines = [
            f"{e.at:%Y-%m-%d %H:%M} {e.actor_name or e.actor}: {e.action}"
            + (f" ({', '.join(sorted(e.changes))})" if e.changes else "")
            for e in self.entries
        ]
        return f"History of ticket #{self.number}:\n" + "\n".join(lines)
