"""Ticket actions: create, get, search, update, assign, comment, tag, escalate, merge, close,
reopen, CSAT, history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend_services.management import domain_events as ev
from backend_services.management import tickets_repo as repo
from backend_services.management import users_repo
from backend_services.management.core import (
    ANONYMOUS_ACTOR_ID,
    Applied,
    apply_once,
    caller_of,
    service,
    state_of,
)
from backend_services.management.errors import Denied, HandlerError
from backend_services.management.lifecycle import ANYONE, PRIORITIES, STAFF, higher_priority, label
from backend_services.management.schemas_tickets import (
    TicketAssign,
    TicketClose,
    TicketCommentIn,
    TicketCreate,
    TicketCsat,
    TicketEscalate,
    TicketHistoryOut,
    TicketList,
    TicketMerge,
    TicketOut,
    TicketRef,
    TicketReopen,
    TicketSearch,
    TicketTagIn,
    TicketUpdate,
)
from backend_services.management.tables import Ticket, TicketTag, User
from backend_services.management.tickets_repo import Caller
from backend_services.runtime import HandlerContext


def _check_access(ticket: Ticket, caller: Caller) -> None:
    if not (caller.staff or repo.is_requester(ticket, caller)):
        raise Denied(
            f"Ticket #{ticket.id} is not yours: you can only see and change tickets you opened."
        )


_TYPE_BY_MODEL = {m: t for t, m in ev.EVENT_TYPES.items()}


async def _event(
    s: AsyncSession, ticket: Ticket, model: type[ev.TicketEvent], **extra: object
) -> tuple[str, dict]:
    """``(type, payload)`` of a ticket event with the ticket's snapshot."""
    payload = model.model_validate({**await repo.snapshot(s, ticket), **extra})
    return _TYPE_BY_MODEL[model], payload.model_dump(mode="json")


async def _check_read_access(s: AsyncSession, ticket: Ticket, ctx: HandlerContext) -> None:
    """Refuse callers who may not see ``ticket`` (like ``_check_access``, fewer queries).

    Staff (by the actor's roles) and whoever opened the ticket need no user lookup; only other
    callers are looked up (their registered user or email may make them the requester).
    """
    actor = ctx.actor
    if actor.has_any(STAFF):
        return
    if actor.id != ANONYMOUS_ACTOR_ID and ticket.created_by == actor.id:
        return
    _check_access(ticket, await caller_of(s, ctx))


async def _ticket_out(ctx: HandlerContext, applied: Applied) -> TicketOut:
    """The answer: built by the change itself when it could, else read from the database."""
    if isinstance(applied.out, TicketOut):
        return applied.out
    assert applied.ticket_id is not None
    staff = ctx.actor.has_any(STAFF)  # what ``Caller.staff`` says
    async with state_of(ctx).db.session() as s:
        _, out = await repo.load_out(s, applied.ticket_id, internal=staff, message=applied.message)
        return out


async def _agent(s: AsyncSession, ref: str, caller: Caller) -> User:
    """The agent ``ref`` names (``me`` = the caller); refuse non-agents."""
    if ref.strip().lower() == "me":
        if caller.user is None:
            raise HandlerError(
                "You are not a registered user yet; ask an admin to link your identity."
            )
        user = caller.user
    else:
        user = await users_repo.get_user(s, ref)
    roles = await users_repo.roles_of(s, user)
    if not {"agent", "admin"} & set(roles):
        raise HandlerError(f"{user.handle} is not an agent, so they cannot take tickets.")
    return user


@service.handler("ticket_create", roles=ANYONE, summary="Open a ticket")
async def ticket_create(payload: TicketCreate, ctx: HandlerContext) -> TicketOut:
    """Open a ticket; a redelivered intent (same envelope id) opens it only once."""
    st = state_of(ctx)
    conv = ctx.envelope.conversation

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        email = str(payload.requester_email) if payload.requester_email else caller.email or ""
        if not email:
            raise HandlerError(
                "Which email address should we use for this ticket? (requester_email is missing)",
                errors=[{"loc": ["requester_email"], "msg": "Field required", "type": "missing"}],
            )
        email = email.lower()
        if caller.user is not None and caller.user.email == email:
            requester: User | None = caller.user  # no need to look them up again
        else:
            requester = await s.scalar(select(User).where(User.email == email))
        if requester is None and caller.user is not None and not caller.staff:
            requester = caller.user
        first_due, resolve_due = st.sla.due(payload.priority, now)
        ticket = Ticket(
            subject=payload.subject,
            description=payload.description,
            status="open",
            priority=payload.priority,
            requester_email=email,
            requester_name=payload.requester_name,
            requester_user_id=requester.id if requester else None,
            created_by=caller.key,
            channel=conv.channel,
            conversation_id=conv.id,
            thread=conv.thread,
            escalation_level=0,
            created_at=now,
            updated_at=now,
            first_response_due_at=first_due,
            resolution_due_at=resolve_due,
        )
        s.add(ticket)
        await s.flush()  # the ticket's number, for the rows below (written at the commit)
        tags = sorted(set(payload.tags))
        s.add_all([TicketTag(ticket_id=ticket.id, tag=tag) for tag in tags])
        repo.record(
            s,
            ticket,
            caller,
            now,
            "created",
            {
                "status": [None, "open"],
                "priority": [None, payload.priority],
                "subject": [None, payload.subject],
                "requester_email": [None, email],
            },
        )
        created = await _event(s, ticket, ev.TicketCreated, channel=conv.channel, tags=payload.tags)
        # A new ticket has no comments and no assignee: answer without reading it back.
        out = repo.build_out(ticket, assignee=None, tags=tags, comments=[])
        return Applied(ticket_id=ticket.id, events=[created], out=out)

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_get", roles=ANYONE, summary="Show a ticket")
async def ticket_get(payload: TicketRef, ctx: HandlerContext) -> TicketOut:
    """A ticket with its comments (internal notes for agents only)."""
    async with state_of(ctx).db.session() as s:
        # Internal notes are read only for staff, known from the actor before the access check.
        ticket, out = await repo.load_out(s, payload.ticket, internal=ctx.actor.has_any(STAFF))
        await _check_read_access(s, ticket, ctx)
        return out


@service.handler("ticket_search", roles=ANYONE, summary="Find tickets")
async def ticket_search(payload: TicketSearch, ctx: HandlerContext) -> TicketList:
    """Search by status, priority, assignee, requester, tag and text; users see their own."""
    async with state_of(ctx).db.session() as s:
        caller = await caller_of(s, ctx)
        items, total = await repo.search(
            s, payload, owner=None if caller.staff else caller, me=caller.user, now=ctx.now()
        )
        return TicketList(items=items, total=total)


@service.handler("ticket_history", roles=ANYONE, summary="Every change of a ticket")
async def ticket_history(payload: TicketRef, ctx: HandlerContext) -> TicketHistoryOut:
    """Who changed what, when."""
    async with state_of(ctx).db.session() as s:
        ticket = await repo.load(s, payload.ticket)
        await _check_read_access(s, ticket, ctx)
        return TicketHistoryOut(number=ticket.id, entries=await repo.history(s, ticket.id))


@service.handler("ticket_update", roles=STAFF, summary="Change a ticket's fields or status")
async def ticket_update(payload: TicketUpdate, ctx: HandlerContext) -> TicketOut:
    """Subject, description, priority and/or status (lifecycle transitions are enforced)."""
    sla = state_of(ctx).sla

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        changes: dict[str, list] = {}
        if payload.subject is not None and payload.subject != ticket.subject:
            changes["subject"] = [ticket.subject, payload.subject]
            ticket.subject = payload.subject
        if payload.description is not None and payload.description != ticket.description:
            changes["description"] = [ticket.description, payload.description]
            ticket.description = payload.description
        if payload.priority is not None and payload.priority != ticket.priority:
            changes["priority"] = repo.set_priority(ticket, payload.priority, sla, now)
        old_status = ticket.status
        if payload.status is not None and payload.status != ticket.status:
            changes.update(repo.set_status(ticket, payload.status, now))
        elif payload.status is not None and not changes:
            repo.set_status(ticket, payload.status, now)  # raises "already <status>"
        if not changes:
            raise HandlerError(f"Nothing to change on ticket #{ticket.id}.")
        ticket.updated_at = now
        repo.record(s, ticket, caller, now, "updated", changes, payload.note)
        events = [await _event(s, ticket, ev.TicketUpdated, changes=changes)]
        if "status" in changes:
            events.append(
                await _event(
                    s,
                    ticket,
                    ev.TicketStatusChanged,
                    old_status=old_status,
                    new_status=ticket.status,
                )
            )
            if ticket.status == "closed":
                events.append(await _event(s, ticket, ev.TicketClosed))
        fields = ", ".join(sorted(changes))
        return Applied(
            ticket_id=ticket.id, message=f"Updated {fields} of ticket #{ticket.id}.", events=events
        )

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_assign", roles=STAFF, summary="Assign a ticket to an agent")
async def ticket_assign(payload: TicketAssign, ctx: HandlerContext) -> TicketOut:
    """Assign to an agent (handle, email or 'me'); no assignee unassigns."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        if ticket.status == "closed":
            raise HandlerError(f"Ticket #{ticket.id} is closed; reopen it first.")
        agent = await _agent(s, payload.assignee, caller) if payload.assignee else None
        old = await repo.handle_of(s, ticket.assignee_id)
        new = agent.handle if agent else None
        if old == new:
            raise HandlerError(
                f"Ticket #{ticket.id} is already "
                + (f"assigned to {new}." if new else "unassigned.")
            )
        ticket.assignee_id = agent.id if agent else None
        ticket.updated_at = now
        repo.record(s, ticket, caller, now, "assigned", {"assignee": [old, new]})
        event = await _event(s, ticket, ev.TicketAssigned, previous_assignee=old)
        text = f"Assigned ticket #{ticket.id} to {new}." if new else f"Unassigned #{ticket.id}."
        return Applied(ticket_id=ticket.id, message=text, events=[event])

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_comment", roles=ANYONE, summary="Comment on a ticket")
async def ticket_comment(payload: TicketCommentIn, ctx: HandlerContext) -> TicketOut:
    """A public reply (requester or agent) or an internal note (agents only)."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        _check_access(ticket, caller)
        if not payload.public and not caller.staff:
            raise Denied("Only agents can add internal notes.")
        if ticket.status == "closed":
            raise HandlerError(f"Ticket #{ticket.id} is closed; reopen it to add a comment.")
        comment = repo.add_comment(s, ticket, caller, payload.body, payload.public, now)
        await s.flush()
        kind = "comment" if payload.public else "internal note"
        changes: dict[str, list] = {}
        events = []
        if not caller.staff and ticket.status == "pending":
            # The requester answered what the agent was waiting for.
            changes = repo.set_status(ticket, "open", now)
        repo.record(s, ticket, caller, now, "commented", changes, note=f"{kind} {comment.id}")
        events.append(
            await _event(
                s,
                ticket,
                ev.TicketCommented,
                comment_id=comment.id,
                public=payload.public,
                author=caller.key,
                by_staff=caller.staff,
                author_name=caller.name or (caller.user.handle if caller.user else None),
                body=payload.body if payload.public else None,
            )
        )
        if changes:
            events.append(
                await _event(
                    s, ticket, ev.TicketStatusChanged, old_status="pending", new_status="open"
                )
            )
        return Applied(
            ticket_id=ticket.id, message=f"Added your {kind} to ticket #{ticket.id}.", events=events
        )

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_tag", roles=STAFF, summary="Add or remove tags")
async def ticket_tag(payload: TicketTagIn, ctx: HandlerContext) -> TicketOut:
    """Tags for routing and reporting."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        old, new = await repo.change_tags(s, ticket, payload.add, payload.remove)
        if old == new:
            raise HandlerError(f"The tags of ticket #{ticket.id} are already {old or 'empty'}.")
        ticket.updated_at = now
        changes = {"tags": [old, new]}
        repo.record(s, ticket, caller, now, "tagged", changes)
        event = await _event(s, ticket, ev.TicketUpdated, changes=changes)
        return Applied(
            ticket_id=ticket.id,
            message=f"Tags of ticket #{ticket.id}: {', '.join(new) or 'none'}.",
            events=[event],
        )

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_escalate", roles=ANYONE, summary="Escalate to a human / higher priority")
async def ticket_escalate(payload: TicketEscalate, ctx: HandlerContext) -> TicketOut:
    """One priority up (or to ``priority``), flagged for a human; agents may pick the agent."""
    sla = state_of(ctx).sla

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        _check_access(ticket, caller)
        if payload.to and not caller.staff:
            raise Denied("Only agents can choose who an escalated ticket goes to.")
        if ticket.status in ("solved", "closed"):
            raise HandlerError(
                f"Ticket #{ticket.id} is {label(ticket.status)}; reopen it before escalating."
            )
        old_priority = ticket.priority
        target = payload.priority or higher_priority(ticket.priority)
        if PRIORITIES.index(target) < PRIORITIES.index(ticket.priority):
            raise HandlerError(
                f"Escalating cannot lower the priority of ticket #{ticket.id} "
                f"({ticket.priority} -> {target}); use ticket_update."
            )
        changes: dict[str, list] = {"escalation_level": [ticket.escalation_level, 0]}
        ticket.escalation_level += 1
        changes["escalation_level"][1] = ticket.escalation_level
        if target != ticket.priority:
            changes["priority"] = repo.set_priority(ticket, target, sla, now)
        agent = await _agent(s, payload.to, caller) if payload.to else None
        if agent is not None and agent.id != ticket.assignee_id:
            changes["assignee"] = [await repo.handle_of(s, ticket.assignee_id), agent.handle]
            ticket.assignee_id = agent.id
        old_tags, new_tags = await repo.change_tags(s, ticket, ["escalated"], [])
        if old_tags != new_tags:
            changes["tags"] = [old_tags, new_tags]
        ticket.updated_at = now
        repo.record(s, ticket, caller, now, "escalated", changes, payload.reason or None)
        event = await _event(
            s,
            ticket,
            ev.TicketEscalated,
            level=ticket.escalation_level,
            old_priority=old_priority,
            reason=payload.reason,
            to=agent.handle if agent else None,
        )
        who = agent.handle if agent else "a human agent"
        return Applied(
            ticket_id=ticket.id,
            message=f"Escalated ticket #{ticket.id} to {who}.",
            events=[event],
        )

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_merge", roles=STAFF, summary="Merge a duplicate into another ticket")
async def ticket_merge(payload: TicketMerge, ctx: HandlerContext) -> TicketOut:
    """The duplicate ``ticket`` is closed and noted on ``into``, which keeps its tags."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        if payload.ticket == payload.into:
            raise HandlerError("A ticket cannot be merged into itself.")
        # Lock both rows in number order, so two opposite merges cannot deadlock.
        locked = {
            n: await repo.load(s, n, lock=True) for n in sorted((payload.ticket, payload.into))
        }
        source, target = locked[payload.ticket], locked[payload.into]
        for t in (source, target):
            if t.status == "closed":
                raise HandlerError(f"Ticket #{t.id} is closed; merge only tickets still in work.")
        old_status = source.status
        repo.add_comment(s, source, caller, f"Merged into #{target.id}.", True, now)
        status_changes = repo.set_status(source, "closed", now)
        source.merged_into_id = target.id
        repo.record(
            s, source, caller, now, "merged", {**status_changes, "merged_into": [None, target.id]}
        )
        repo.add_comment(
            s,
            target,
            caller,
            f"Ticket #{source.id} ({source.requester_email}) was merged into this one: "
            f"{source.subject}\n\n{source.description}",
            False,
            now,
        )
        old_tags, new_tags = await repo.change_tags(s, target, await repo.tags_of(s, source.id), [])
        target_changes: dict[str, list] = {"merged_from": [None, source.id]}
        if old_tags != new_tags:
            target_changes["tags"] = [old_tags, new_tags]
        target.updated_at = now
        repo.record(s, target, caller, now, "merged", target_changes)
        events = [
            await _event(s, source, ev.TicketMerged, into=target.id),
            await _event(
                s, source, ev.TicketStatusChanged, old_status=old_status, new_status="closed"
            ),
            await _event(s, source, ev.TicketClosed),
        ]
        return Applied(
            ticket_id=target.id,
            message=f"Merged ticket #{source.id} into #{target.id}.",
            events=events,
        )

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_close", roles=ANYONE, summary="Close a ticket")
async def ticket_close(payload: TicketClose, ctx: HandlerContext) -> TicketOut:
    """Close (requesters: their own tickets), optionally with a last public comment."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        _check_access(ticket, caller)
        old_status = ticket.status
        changes = repo.set_status(ticket, "closed", now)  # raises when already closed
        if payload.comment:
            repo.add_comment(s, ticket, caller, payload.comment, True, now)
        repo.record(s, ticket, caller, now, "closed", changes, payload.comment)
        events = [
            await _event(
                s, ticket, ev.TicketStatusChanged, old_status=old_status, new_status="closed"
            ),
            await _event(s, ticket, ev.TicketClosed),
        ]
        return Applied(ticket_id=ticket.id, message=f"Closed ticket #{ticket.id}.", events=events)

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_reopen", roles=ANYONE, summary="Reopen a solved or closed ticket")
async def ticket_reopen(payload: TicketReopen, ctx: HandlerContext) -> TicketOut:
    """Back to open (requesters: their own tickets)."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        _check_access(ticket, caller)
        if ticket.status not in ("solved", "closed"):
            raise HandlerError(
                f"Ticket #{ticket.id} is {label(ticket.status)}, not solved or closed: "
                "there is nothing to reopen."
            )
        old_status = ticket.status
        changes = repo.set_status(ticket, "open", now)
        if payload.comment:
            repo.add_comment(s, ticket, caller, payload.comment, True, now)
        repo.record(s, ticket, caller, now, "reopened", changes, payload.comment)
        event = await _event(
            s, ticket, ev.TicketStatusChanged, old_status=old_status, new_status="open"
        )
        return Applied(
            ticket_id=ticket.id, message=f"Reopened ticket #{ticket.id}.", events=[event]
        )

    return await _ticket_out(ctx, await apply_once(ctx, change))


@service.handler("ticket_csat", roles=ANYONE, summary="Rate the support of a ticket (1-5)")
async def ticket_csat(payload: TicketCsat, ctx: HandlerContext) -> TicketOut:
    """The requester rates a solved or closed ticket; a new rating replaces the old one."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        ticket = await repo.load(s, payload.ticket, lock=True)
        if not repo.is_requester(ticket, caller):
            raise Denied(f"Only the requester of ticket #{ticket.id} can rate it.")
        if ticket.status not in ("solved", "closed"):
            raise HandlerError(
                f"Ticket #{ticket.id} is {label(ticket.status)}; you can rate it once it is solved."
            )
        changes = {"csat_score": [ticket.csat_score, payload.score]}
        ticket.csat_score = payload.score
        ticket.csat_comment = payload.comment
        ticket.updated_at = now
        repo.record(s, ticket, caller, now, "rated", changes, payload.comment)
        event = await _event(
            s, ticket, ev.TicketCsatRated, score=payload.score, comment=payload.comment
        )
        return Applied(
            ticket_id=ticket.id,
            message=f"Thanks for rating ticket #{ticket.id} {payload.score}/5.",
            events=[event],
        )

    return await _ticket_out(ctx, await apply_once(ctx, change))
