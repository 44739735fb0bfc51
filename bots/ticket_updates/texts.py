"""What a ticket event tells its requester (or nothing), as chat text and as an e-mail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from events.envelope import Envelope

from .conversations import CHAT_CHANNELS, TicketConversation

log = logging.getLogger("frontdoor.ticket_updates")

TICKET_CREATED = "ticket.created"
TICKET_COMMENTED = "ticket.commented"
TICKET_STATUS_CHANGED = "ticket.status_changed"
#: The events a requester hears about.
NOTICE_TYPES = frozenset({TICKET_COMMENTED, TICKET_STATUS_CHANGED})
STAFF_ROLES = ("agent", "admin")
#: A comment longer than this is cut in a notice (the whole of it is in the ticket).
MAX_BODY_CHARS = 3000
MAX_SUBJECT_CHARS = 120


class _TicketEvent(BaseModel):
    """What the front door reads of management's ``ticket.*`` payloads."""

    model_config = ConfigDict(extra="ignore")

    ticket: int
    subject: str = ""
    requester_email: str = ""


class _Commented(_TicketEvent):
    public: bool
    by_staff: bool
    author_name: str | None = None
    body: str | None = None


class _StatusChanged(_TicketEvent):
    new_status: str


@dataclass(frozen=True)
class Notice:
    """One thing to tell a requester about their ticket."""

    ticket: int
    kind: Literal["comment", "status"]
    text: str
    email_subject: str
    requester_email: str


def learn(created: Envelope) -> tuple[int, TicketConversation] | None:
    """The ticket number of ``ticket.created`` and where its notices go."""
    try:
        number = _TicketEvent.model_validate(created.payload).ticket
    except ValidationError:
        log.warning("ticket.created %s does not validate; its notices cannot be routed", created.id)
        return None
    # A ticket an agent opened (for someone else) is not announced in the agent's chat.
    chat = created.conversation.channel in CHAT_CHANNELS and not created.actor.has_any(STAFF_ROLES)
    record = TicketConversation(
        conversation=created.conversation, requester=created.actor.id, chat=chat
    )
    return number, record


def notice_for(event: Envelope, record: TicketConversation | None) -> Notice | None:
    """What ``event`` tells the ticket's requester, or ``None``.

    Only support's public comments and status changes; never an internal note, and never what
    the requester did themselves (they saw the answer to it already).
    """
    if event.type not in NOTICE_TYPES:
        return None
    if record is not None and event.actor.id == record.requester:
        return None
    try:
        if event.type == TICKET_COMMENTED:
            return _comment_notice(event.payload_as(_Commented))
        return _status_notice(event.payload_as(_StatusChanged))
    except ValidationError:
        log.warning("%s %s does not validate; no notice", event.type, event.id)
        return None


def _comment_notice(event: _Commented) -> Notice | None:
    if not event.public or not event.by_staff:
        return None
    head = f"Update on ticket #{event.ticket} ({_short(event.subject, MAX_SUBJECT_CHARS)})"
    who = f"{event.author_name} (support)" if event.author_name else "Support"
    if event.body:
        text = f"{head}: {who} wrote:\n{_short(event.body, MAX_BODY_CHARS)}"
    else:  # from a management that does not send comment bodies yet
        text = f"{head}: {who} replied."
    return Notice(
        ticket=event.ticket,
        kind="comment",
        text=text,
        email_subject=f"[Ticket #{event.ticket}] {_one_line(event.subject)}: new reply",
        requester_email=event.requester_email,
    )


def _status_notice(event: _StatusChanged) -> Notice:
    status = event.new_status.replace("_", " ")
    subject = _short(event.subject, MAX_SUBJECT_CHARS)
    return Notice(
        ticket=event.ticket,
        kind="status",
        text=f"Ticket #{event.ticket} ({subject}) is now {status}.",
        email_subject=f"[Ticket #{event.ticket}] {_one_line(event.subject)}: now {status}",
        requester_email=event.requester_email,
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _one_line(text: str) -> str:
    """A header-safe subject: no line breaks (they would start a new header), bounded."""
    return _short(" ".join(text.split()), MAX_SUBJECT_CHARS)
