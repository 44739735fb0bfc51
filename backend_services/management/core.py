"""The management ``Service`` object, its shared state, and the plumbing every handler uses:
who is calling (``Caller``) and applying a change exactly once per intent (``apply_once``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend_services.management import users_repo
from backend_services.management.database import Database
from backend_services.management.errors import HandlerError
from backend_services.management.lifecycle import STAFF, SlaPolicy, TransitionError
from backend_services.management.settings import ManagementSettings
from backend_services.management.tables import ProcessedRequest
from backend_services.management.tickets_repo import Caller
from backend_services.runtime import HandlerContext, Service
from backend_services.runtime.outbox import OutboxRelay, envelopes_from_json, envelopes_json
from events.envelope import Envelope

if TYPE_CHECKING:
    from backend_services.management.ops import ServiceRegistry
    from backend_services.management.sla import SlaChecker

service = Service(
    "management",
    version="0.1.0",
    description="Tickets, people and roles, and the state of the services",
)

STATE_KEY = "management"


@dataclass
class ManagementState:
    """What on_startup builds and every handler uses (``ctx.state["management"]``)."""

    settings: ManagementSettings
    db: Database
    sla: SlaPolicy
    clock: Callable[[], datetime]
    registry: ServiceRegistry | None = None
    checker: SlaChecker | None = None
    relay: OutboxRelay | None = None


def state_of(ctx: HandlerContext) -> ManagementState:
    """The service state (raises when the service was not started)."""
    st = ctx.state.get(STATE_KEY)
    if not isinstance(st, ManagementState):
        raise RuntimeError("the management service is not started (no state)")
    return st


#: The one actor every anonymous headless-API caller shares: it owns nothing.
ANONYMOUS_ACTOR_ID = "guest:anonymous"


async def caller_of(s: AsyncSession, ctx: HandlerContext) -> Caller:
    """The calling (verified) actor with their registered user, if any.

    The actor id is already namespaced by what proved it (``slack:U1``, ``guest:w-...``), so it
    is the key of what the caller creates. The email is the user's, or one the claim verified.
    """
    actor = ctx.actor
    user = await users_repo.user_for_actor(s, actor)
    return Caller(
        key=actor.id,
        name=actor.name or (user.name if user else None),
        user=user,
        staff=actor.has_any(STAFF),
        email=(user.email if user else None) or ctx.verified_email,
        anonymous=actor.id == ANONYMOUS_ACTOR_ID,
    )


@dataclass
class Applied:
    """What a change did: the ticket/user it concerns, a message, the events to publish."""

    message: str | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ticket_id: int | None = None
    user_id: int | None = None
    #: Not stored: the answer, when the change could build it without another query. Only
    #: set on a fresh application; a redelivery is answered from the current state.
    out: Any = None

    #: the events as envelopes (built in the transaction, published after it)
    envelopes: list[Envelope] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "envelopes": envelopes_json(self.envelopes),
            "user_id": self.user_id,
        }

    @classmethod
    def from_row(cls, row: ProcessedRequest) -> Applied:
        data = row.result or {}
        return cls(
            message=data.get("message"),
            ticket_id=row.ticket_id,
            user_id=data.get("user_id"),
            envelopes=envelopes_from_json(data.get("envelopes")),
        )


Change = Callable[[AsyncSession, Caller, datetime], Awaitable[Applied]]


async def apply_once(ctx: HandlerContext, change: Change) -> Applied:
    """Run ``change`` in one transaction, once per intent id, then publish its events.

    The intent's envelope id is stored with the change (primary key, same transaction), so a
    redelivered intent does not apply twice: the recorded result is found and its events are
    re-published instead (their ids derive from the intent id, so the bus keeps one copy), and
    it is answered from the current state. The events are stored in the same transaction as
    envelopes (the outbox): if publishing them fails after the commit, the relay publishes them.

    On PostgreSQL the id is looked up first. On SQLite the change is simply attempted: a
    redelivery then fails on the key (or the change itself refuses, e.g. "already closed") and
    is rolled back without a trace (SQLite reuses the rolled-back row ids, where a PostgreSQL
    sequence would leave a gap in the ticket numbers), and only then is the id looked up. That
    saves a query on every first delivery.
    """
    st = state_of(ctx)
    request_id = str(ctx.envelope.id)
    now = ctx.now()
    look_up_first = st.db.backend != "sqlite"
    applied: Applied | None = None
    for attempt in (1, 2):
        try:
            async with st.db.write_session() as s:
                if look_up_first and (done := await s.get(ProcessedRequest, request_id)):
                    applied = Applied.from_row(done)
                    break
                caller = await caller_of(s, ctx)
                try:
                    applied = await change(s, caller, now)
                except TransitionError as exc:
                    raise HandlerError(str(exc)) from exc
                applied.envelopes = [
                    ctx.event(number, event_type, payload)
                    for number, (event_type, payload) in enumerate(applied.events, 1)
                ]
                s.add(
                    ProcessedRequest(
                        request_id=request_id,
                        action=ctx.action,
                        ticket_id=applied.ticket_id,
                        result=applied.to_json(),
                        created_at=now,
                    )
                )
            break
        except Exception as exc:
            if look_up_first and not isinstance(exc, IntegrityError):
                raise  # not applied before (we looked): the change itself failed
            # Already applied (a redelivery, or a concurrent delivery committed first)?
            applied = await _recorded(st, request_id)
            if applied is not None:
                break
            if not isinstance(exc, IntegrityError) or attempt == 2:
                raise
    assert applied is not None
    relay = st.relay
    if relay is not None:
        await relay.publish(request_id, applied.envelopes)
    else:
        for env in applied.envelopes:
            await ctx.bus.publish(env)
    return applied


async def _recorded(st: ManagementState, request_id: str) -> Applied | None:
    """What the intent ``request_id`` did, if it was applied already."""
    async with st.db.session() as s:
        done = await s.get(ProcessedRequest, request_id)
        return Applied.from_row(done) if done is not None else None
