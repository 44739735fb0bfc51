"""Erasing a person from management's database (the ``user_erase`` action).

A person is a registered user (handle, email or identity), a requester known only by an e-mail
address, or a guest known only by the actor id their tickets were opened under (``guest:w-…``).

What goes, and why this choice (docs/management.md, *Erasing a person*): the tickets they
requested are **deleted** with their comments, tags and history (the person's own words are the
substance of those tickets; anonymising the requester would keep them). Their comments on other
tickets are deleted too. What stays of them on other tickets is the record that *someone* acted:
history rows and ``created_by`` are **anonymised** to ``erased`` (a ticket an erased agent
worked on keeps its history, without naming them). The user record goes
with its roles, identities, API keys and password.

Foreign keys are not relied on to cascade (SQLite enforces them only when asked), so each table
is deleted from explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from backend_services.management import users_repo as repo
from backend_services.management.errors import HandlerError
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

#: What an erased person's id becomes where a ticket must still say that someone acted.
ERASED_ACTOR = "erased"


@dataclass(frozen=True)
class Person:
    """Whom an erasure is about: a user record, an e-mail address, the actor ids they acted
    under (``user:<handle>``, their identities, or a guest's id)."""

    user: User | None
    email: str | None
    actor_ids: frozenset[str] = field(default_factory=frozenset)
    #: a guest: the tickets opened under this actor id are theirs
    guest: str | None = None

    @property
    def what(self) -> str:
        """``user``, ``requester`` (an e-mail address) or ``guest``."""
        return "user" if self.user else "guest" if self.guest else "requester"


@dataclass(frozen=True)
class Erased:
    """How much was (or, in a dry run, would be) erased. The audit event carries the counts,
    never the person; ``ticket_numbers`` go to the caller only."""

    what: str
    tickets: int
    comments: int
    anonymised: int
    user_record: bool
    ticket_numbers: list[int] = field(default_factory=list)


async def find_person(s: AsyncSession, ref: str) -> Person:
    """The person ``ref`` names, or ``HandlerError`` saying why there is none."""
    ref = ref.strip()
    user = await repo.find_user(s, ref)
    if user is not None:
        out = await repo.user_out(s, user)
        ids = frozenset({f"{repo.USER_ACTOR_PREFIX}{user.handle}", *out.identities})
        return Person(user=user, email=user.email, actor_ids=ids)
    if "@" in ref and ":" not in ref:
        return Person(user=None, email=ref)
    if ":" in ref and not ref.startswith(repo.USER_ACTOR_PREFIX):
        return Person(user=None, email=None, actor_ids=frozenset({ref}), guest=ref)
    raise HandlerError(
        f"There is no user '{ref}' (an e-mail address erases a requester, an actor id such as "
        "guest:w-… a guest)."
    )


def _theirs(person: Person) -> ColumnElement[bool] | None:
    mine: list[ColumnElement[bool]] = []
    if person.user is not None:
        mine.append(Ticket.requester_user_id == person.user.id)
    if person.email:
        mine.append(func.lower(Ticket.requester_email) == person.email.lower())
    if person.guest:
        mine.append((Ticket.created_by == person.guest) & Ticket.requester_user_id.is_(None))
    return or_(*mine) if mine else None


async def _count(s: AsyncSession, table: type, *where: ColumnElement[bool]) -> int:
    return int(await s.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def plan_erasure(s: AsyncSession, person: Person) -> Erased:
    """What erasing ``person`` would remove (a dry run: nothing changes)."""
    theirs = _theirs(person)
    numbers = sorted(await s.scalars(select(Ticket.id).where(theirs))) if theirs is not None else []
    ids = list(person.actor_ids)
    others = ~Ticket.id.in_(numbers) if numbers else Ticket.id.is_not(None)
    comments = anonymised = 0
    if ids:
        by_them = TicketComment.author_id.in_(ids)
        comments = await _count(s, TicketComment, by_them, ~TicketComment.ticket_id.in_(numbers))
        acted = TicketHistory.actor_id.in_(ids)
        anonymised = await _count(s, TicketHistory, acted, ~TicketHistory.ticket_id.in_(numbers))
        anonymised += await _count(s, Ticket, Ticket.created_by.in_(ids), others)
    return Erased(
        what=person.what,
        tickets=len(numbers),
        comments=comments,
        anonymised=anonymised,
        user_record=person.user is not None,
        ticket_numbers=numbers,
    )


def _needles(person: Person) -> set[str]:
    """What names the person in a history row's ``changes`` (``assignee: [null, "andy"]``)."""
    found = {person.email or ""}
    if person.user is not None:
        found |= {person.user.handle, person.user.email or "", person.user.name or ""}
    return {n.lower() for n in found if len(n) >= 3}


def _scrub(value: object, needles: set[str]) -> object:
    if isinstance(value, str):
        return ERASED_ACTOR if value.lower() in needles else value
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, needles) for k, v in value.items()}
    return value


async def _anonymise_changes(s: AsyncSession, person: Person, erased: set[int]) -> None:
    """Replace the person's handle, email or name among other tickets' recorded changes."""
    for needle in _needles(person):
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        text = func.lower(cast(TicketHistory.changes, String))
        rows = await s.scalars(select(TicketHistory).where(text.like(pattern, escape="\\")))
        for row in rows:
            if row.ticket_id not in erased:
                row.changes = _scrub(row.changes, {needle})  # type: ignore[assignment]


async def erase_person(s: AsyncSession, person: Person) -> Erased:
    """Erase ``person`` in session ``s`` (the caller's transaction); returns the counts."""
    planned = await plan_erasure(s, person)
    ticket_ids = planned.ticket_numbers
    if ticket_ids:
        for table in (TicketComment, TicketTag, TicketHistory):
            await s.execute(delete(table).where(table.ticket_id.in_(ticket_ids)))
        # a merged duplicate of an erased ticket points nowhere
        await s.execute(
            update(Ticket).where(Ticket.merged_into_id.in_(ticket_ids)).values(merged_into_id=None)
        )
        await s.execute(delete(Ticket).where(Ticket.id.in_(ticket_ids)))
    ids = list(person.actor_ids)
    if ids:
        await s.execute(delete(TicketComment).where(TicketComment.author_id.in_(ids)))
        await s.execute(
            update(TicketHistory)
            .where(TicketHistory.actor_id.in_(ids))
            .values(actor_id=ERASED_ACTOR, actor_name=None)
        )
        await s.execute(
            update(Ticket).where(Ticket.created_by.in_(ids)).values(created_by=ERASED_ACTOR)
        )
    await _anonymise_changes(s, person, set(ticket_ids))
    if person.user is not None:
        user = person.user
        await s.execute(
            update(Ticket).where(Ticket.assignee_id == user.id).values(assignee_id=None)
        )
        for owned in (UserRole, Identity, ApiKey):
            await s.execute(delete(owned).where(owned.user_id == user.id))
        await s.execute(delete(User).where(User.id == user.id))
    return planned
