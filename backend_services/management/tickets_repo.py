"""Tickets in the database: create, find, change with history, search, SLA breaches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend_services.management.errors import NotFound
from backend_services.management.lifecycle import SlaPolicy, check_transition
from backend_services.management.schemas_tickets import (
    CommentOut,
    HistoryEntry,
    TicketOut,
    TicketSearch,
    TicketSummary,
)
from backend_services.management.tables import (
    ProcessedRequest,
    Ticket,
    TicketComment,
    TicketHistory,
    TicketTag,
    User,
)


@dataclass(frozen=True)
class Caller:
    """Who acts on a ticket: actor key (``channel:id``), name, their user, staff or not."""

    key: str
    name: str | None
    user: User | None
    staff: bool
    email: str | None = None
    #: an unidentified caller owns nothing (``anonymous`` is shared by every such caller)
    anonymous: bool = False


async def load(s: AsyncSession, number: int, *, lock: bool = False) -> Ticket:
    """The ticket ``#number`` or ``NotFound``."""
    query = select(Ticket).where(Ticket.id == number)
    if lock:
        query = query.with_for_update()
    ticket = await s.scalar(query)
    if ticket is None:
        raise NotFound(f"There is no ticket #{number}.")
    return ticket


def is_requester(ticket: Ticket, caller: Caller) -> bool:
    """True when ``caller`` opened the ticket or is its requester."""
    if caller.anonymous:
        return False
    if ticket.created_by == caller.key:
        return True
    if caller.user is not None and ticket.requester_user_id == caller.user.id:
        return True
    return bool(caller.email and caller.email.lower() == ticket.requester_email.lower())


def record(
    s: AsyncSession,
    ticket: Ticket,
    caller: Caller,
    at: datetime,
    action: str,
    changes: dict[str, Any] | None = None,
    note: str | None = None,
) -> None:
    """Append a history entry (who, when, what)."""
    s.add(
        TicketHistory(
            ticket_id=ticket.id,
            at=at,
            actor_id=caller.key,
            actor_name=caller.name,
            action=action,
            changes=changes or {},
            note=note,
        )
    )


def set_status(ticket: Ticket, new: str, now: datetime) -> dict[str, list[Any]]:
    """Move to ``new`` (raises ``TransitionError``); return the changes it made."""
    check_transition(ticket.id, ticket.status, new)
    changes: dict[str, list[Any]] = {"status": [ticket.status, new]}
    ticket.status = new
    if new == "solved":
        ticket.solved_at = now
    elif new == "closed":
        ticket.closed_at = now
        if ticket.solved_at is None:
            ticket.solved_at = now
    elif new == "open":
        ticket.solved_at = None
        ticket.closed_at = None
    ticket.updated_at = now
    return changes


def set_priority(ticket: Ticket, priority: str, sla: SlaPolicy, now: datetime) -> list[Any]:
    """Change the priority and recompute the SLA due times from the ticket's creation."""
    old = ticket.priority
    ticket.priority = priority
    ticket.first_response_due_at, ticket.resolution_due_at = sla.due(priority, ticket.created_at)
    ticket.updated_at = now
    return [old, priority]


async def tags_of(s: AsyncSession, ticket_id: int) -> list[str]:
    """The ticket's tags, sorted."""
    return sorted(await s.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == ticket_id)))


async def change_tags(
    s: AsyncSession, ticket: Ticket, add: list[str], remove: list[str]
) -> tuple[list[str], list[str]]:
    """Add/remove tags; return ``(old, new)`` tag lists."""
    old = await tags_of(s, ticket.id)
    for tag in sorted(set(add) - set(old)):
        s.add(TicketTag(ticket_id=ticket.id, tag=tag))
    gone = set(remove) & set(old)
    if gone:
        await s.execute(
            delete(TicketTag).where(TicketTag.ticket_id == ticket.id, TicketTag.tag.in_(gone))
        )
    await s.flush()
    return old, sorted((set(old) | set(add)) - set(remove))


def add_comment(
    s: AsyncSession, ticket: Ticket, caller: Caller, body: str, public: bool, now: datetime
) -> TicketComment:
    """Add a comment; an agent's first public reply is the ticket's first response."""
    comment = TicketComment(
        ticket_id=ticket.id,
        author_id=caller.key,
        author_name=caller.name,
        author_is_staff=caller.staff,
        body=body,
        public=public,
        created_at=now,
    )
    s.add(comment)
    if public and caller.staff and ticket.first_responded_at is None:
        ticket.first_responded_at = now
    ticket.updated_at = now
    return comment


async def handle_of(s: AsyncSession, user_id: int | None) -> str | None:
    """A user's handle (``None`` for no user)."""
    if user_id is None:
        return None
    return await s.scalar(select(User.handle).where(User.id == user_id))


_LOAD_OUT: dict[tuple[str, bool], Select[Any]] = {}


def _load_out_query(dialect: str, internal: bool) -> Select[Any]:
    """``load_out``'s query, built once per dialect and visibility (building it cost more
    than running it)."""
    query = _LOAD_OUT.get((dialect, internal))
    if query is None:
        # Tags never contain a comma (validated), so a comma-joined aggregate is safe to split.
        if dialect == "postgresql":
            joined = func.string_agg(TicketTag.tag, ",")
        else:
            joined = func.group_concat(TicketTag.tag, ",")
        tags = select(joined).where(TicketTag.ticket_id == Ticket.id).scalar_subquery()
        assignee = select(User.handle).where(User.id == Ticket.assignee_id).scalar_subquery()
        on = TicketComment.ticket_id == Ticket.id
        if not internal:
            on = on & TicketComment.public.is_(True)
        query = (
            select(Ticket, assignee, tags, TicketComment)
            .outerjoin(TicketComment, on)
            .where(Ticket.id == bindparam("number"))
            .order_by(TicketComment.id)
        )
        _LOAD_OUT[(dialect, internal)] = query
    return query


async def load_out(
    s: AsyncSession, number: int, *, internal: bool, message: str | None = None
) -> tuple[Ticket, TicketOut]:
    """The ticket ``#number`` (or ``NotFound``) and its output model, in one query.

    ``internal`` includes internal notes (staff only). The assignee's handle and the tags come
    as scalar subqueries, the comments by an outer join (one row per comment).
    """
    query = _load_out_query(s.get_bind().dialect.name, internal)
    rows = (await s.execute(query, {"number": number})).all()
    if not rows:
        raise NotFound(f"There is no ticket #{number}.")
    ticket, handle, tag_list = rows[0][0], rows[0][1], rows[0][2]
    comments = [
        CommentOut(
            id=c.id,
            author=c.author_id,
            author_name=c.author_name,
            public=c.public,
            body=c.body,
            created_at=c.created_at,
        )
        for *_, c in rows
        if c is not None
    ]
    out = build_out(
        ticket,
        assignee=handle,
        tags=sorted(tag_list.split(",")) if tag_list else [],
        comments=comments,
        message=message,
    )
    return ticket, out


def build_out(
    ticket: Ticket,
    *,
    assignee: str | None,
    tags: list[str],
    comments: list[CommentOut],
    message: str | None = None,
) -> TicketOut:
    """The output model of a ticket, given its assignee's handle, tags and comments."""
    return TicketOut(
        number=ticket.id,
        subject=ticket.subject,
        description=ticket.description,
        status=ticket.status,  # type: ignore[arg-type]
        priority=ticket.priority,  # type: ignore[arg-type]
        requester_email=ticket.requester_email,
        requester_name=ticket.requester_name,
        assignee=assignee,
        tags=tags,
        escalation_level=ticket.escalation_level,
        merged_into=ticket.merged_into_id,
        csat_score=ticket.csat_score,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        first_response_due_at=ticket.first_response_due_at,
        resolution_due_at=ticket.resolution_due_at,
        first_responded_at=ticket.first_responded_at,
        solved_at=ticket.solved_at,
        closed_at=ticket.closed_at,
        first_response_breached=ticket.first_response_breached_at is not None,
        resolution_breached=ticket.resolution_breached_at is not None,
        comments=comments,
        message=message,
    )


async def snapshot(s: AsyncSession, ticket: Ticket) -> dict[str, Any]:
    """The common fields of a ``ticket.*`` event."""
    return {
        "ticket": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "requester_email": ticket.requester_email,
        "assignee": await handle_of(s, ticket.assignee_id),
    }


async def history(s: AsyncSession, ticket_id: int) -> list[HistoryEntry]:
    """Every change of a ticket, oldest first."""
    rows = await s.scalars(
        select(TicketHistory).where(TicketHistory.ticket_id == ticket_id).order_by(TicketHistory.id)
    )
    return [
        HistoryEntry(
            at=h.at,
            actor=h.actor_id,
            actor_name=h.actor_name,
            action=h.action,
            changes=h.changes,
            note=h.note,
        )
        for h in rows
    ]


def next_sla_due(t: Ticket) -> datetime | None:
    """The next SLA target of an unsolved ticket: first response, else resolution."""
    if t.status in ("solved", "closed"):
        return None
    return t.first_response_due_at if t.first_responded_at is None else t.resolution_due_at


async def search(
    s: AsyncSession,
    q: TicketSearch,
    *,
    owner: Caller | None,
    me: User | None,
    now: datetime | None = None,
) -> tuple[list[TicketSummary], int]:
    """Tickets matching ``q``; ``owner`` restricts to that requester's own tickets."""
    conds: list[Any] = []
    if q.sla_due_within_minutes is not None:
        until = (now or datetime.now(UTC)) + timedelta(minutes=q.sla_due_within_minutes)
        conds.append(Ticket.status.in_(("open", "pending", "on_hold")))
        conds.append(
            or_(
                and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at <= until),
                and_(Ticket.first_responded_at.is_not(None), Ticket.resolution_due_at <= until),
            )
        )
    if q.status:
        conds.append(Ticket.status.in_(q.status))
    if q.priority:
        conds.append(Ticket.priority.in_(q.priority))
    if q.assignee:
        who = q.assignee.strip().lower()
        if who in ("none", "nobody", "unassigned"):
            conds.append(Ticket.assignee_id.is_(None))
        elif who == "me":
            conds.append(Ticket.assignee_id == (me.id if me else -1))
        else:
            sub = select(User.id).where(or_(User.handle == who, func.lower(User.email) == who))
            conds.append(Ticket.assignee_id.in_(sub))
    if q.requester:
        conds.append(func.lower(Ticket.requester_email).like(f"%{q.requester.lower()}%"))
    if q.text:
        for word in q.text.lower().split():
            like = f"%{word}%"
            conds.append(
                or_(
                    func.lower(Ticket.subject).like(like), func.lower(Ticket.description).like(like)
                )
            )
    if q.tag:
        conds.append(
            Ticket.id.in_(select(TicketTag.ticket_id).where(TicketTag.tag == q.tag.lower()))
        )
    if owner is not None:
        own = [Ticket.created_by == ("" if owner.anonymous else owner.key)]
        if owner.user is not None:
            own.append(Ticket.requester_user_id == owner.user.id)
        if owner.email:
            own.append(func.lower(Ticket.requester_email) == owner.email.lower())
        conds.append(or_(*own))
    total = int(await s.scalar(select(func.count()).select_from(Ticket).where(*conds)) or 0)
    rows = await s.scalars(
        select(Ticket).where(*conds).order_by(Ticket.id.desc()).limit(q.limit).offset(q.offset)
    )
    items = [
        TicketSummary(
            number=t.id,
            subject=t.subject,
            status=t.status,  # type: ignore[arg-type]
            priority=t.priority,  # type: ignore[arg-type]
            requester_email=t.requester_email,
            assignee=await handle_of(s, t.assignee_id),
            updated_at=t.updated_at,
            sla_due_at=next_sla_due(t),
        )
        for t in rows
    ]
    return items, total


async def claim_breaches(s: AsyncSession, now: datetime) -> list[tuple[Ticket, str, datetime]]:
    """Mark every newly missed SLA target; return ``(ticket, kind, due_at)`` for each.

    The conditional UPDATE claims a breach exactly once, even with several instances checking.
    """
    found: list[tuple[Ticket, str, datetime]] = []
    targets = (
        (
            "first_response",
            Ticket.first_response_due_at,
            Ticket.first_response_breached_at,
            Ticket.first_responded_at.is_(None),
        ),
        (
            "resolution",
            Ticket.resolution_due_at,
            Ticket.resolution_breached_at,
            Ticket.status.in_(("open", "pending", "on_hold")),
        ),
    )
    for kind, due_col, breached_col, still_waiting in targets:
        candidates = list(
            await s.scalars(
                select(Ticket.id).where(
                    due_col <= now,
                    breached_col.is_(None),
                    still_waiting,
                    Ticket.status.in_(("open", "pending", "on_hold")),
                )
            )
        )
        for ticket_id in candidates:
            claimed = await s.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id, breached_col.is_(None))
                .values({breached_col.key: now})
            )
            if claimed.rowcount:  # type: ignore[attr-defined]
                ticket = await s.get(Ticket, ticket_id, populate_existing=True)
                assert ticket is not None
                found.append((ticket, kind, getattr(ticket, due_col.key)))
    return found


async def prune_processed(s: AsyncSession, older_than: datetime) -> int:
    """Forget processed request ids older than ``older_than`` (redeliveries stop long before)
    whose events were published (the outbox keeps the others until the relay publishes them)."""
    result = await s.execute(
        delete(ProcessedRequest).where(
            ProcessedRequest.created_at < older_than, ProcessedRequest.published_at.is_not(None)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


PROCESSED_RETENTION = timedelta(days=2)
