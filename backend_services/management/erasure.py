"""Erasing a person from management's database (the ``user_erase`` action).

A person is a registered user (handle, email or identity) or a requester known only by an
e-mail address. Erasing deletes what holds their personal data: the tickets they requested
(with those tickets' comments, tags and history), their comments on other tickets, and the user
record with its roles, identities and API keys. Foreign keys are not relied on to cascade
(SQLite enforces them only when asked), so each table is deleted from explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend_services.management.tables import (
    ApiKey,
    Identity,
    Ticket,
    TicketComment,
    TicketHistory,
    TicketTag,
    User,
    UserRole,
)


@dataclass(frozen=True)
class Erased:
    """How much was erased (counts only: the audit event carries these, never the person)."""

    tickets: int
    comments: int
    user_record: bool


async def erase_person(
    s: AsyncSession, *, user: User | None, email: str | None, actor_ids: set[str]
) -> Erased:
    """Delete the person's tickets, comments and user record in session ``s`` (the caller's
    transaction); ``actor_ids`` are the proven ids they acted under (``user:<handle>``, their
    identities), ``email`` their e-mail address."""
    mine = []
    if user is not None:
        mine.append(Ticket.requester_user_id == user.id)
    if email:
        mine.append(func.lower(Ticket.requester_email) == email.lower())
    ticket_ids = list(await s.scalars(select(Ticket.id).where(or_(*mine)))) if mine else []
    comments = 0
    if ticket_ids:
        for table in (TicketComment, TicketTag, TicketHistory):
            await s.execute(delete(table).where(table.ticket_id.in_(ticket_ids)))
        # a merged duplicate of an erased ticket points nowhere
        await s.execute(
            update(Ticket).where(Ticket.merged_into_id.in_(ticket_ids)).values(merged_into_id=None)
        )
        await s.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
    if actor_ids:
        gone = await s.execute(delete(TicketComment).where(TicketComment.author_id.in_(actor_ids)))
        comments = int(getattr(gone, "rowcount", 0) or 0)
    if user is not None:
        await s.execute(
            update(Ticket).where(Ticket.assignee_id == user.id).values(assignee_id=None)
        )
        for owned in (UserRole, Identity, ApiKey):
            await s.execute(delete(owned).where(owned.user_id == user.id))
        await s.execute(delete(User).where(User.id == user.id))
    return Erased(tickets=len(ticket_ids), comments=comments, user_record=user is not None)
