"""What ``frontdoor transcript`` and ``frontdoor erase`` do, apart from the command line.

The operator acts as an admin (claims signed with the gateway's key, like ``frontdoor dead
replay``) through the services' intents, in a conversation of its own (``system`` /
``cli-<run>``). The services' answers land on ``FD_EVENTS`` like every reply, so the answers of
a run (a person's profile, their tickets) are purged from the bus when the run ends: an export
or an erasure leaves no copy of what it read behind (``Operator.forget``).

Erasing a person (``erase_person``): a dry run of management's ``user_erase`` first (whom, how
much; refuses the last admin before anything goes), then their conversations are purged from
``FD_EVENTS`` with their KV state (dialogue state, Slack hand-off threads), marketing's lead with
their e-mail goes (``lead_erase``), then management erases its records and publishes the one
``privacy.erased`` audit event of the whole erasure (with the bus counts), and the ticket
notices forget where their tickets were opened.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from events.bus import Bus
    from events.envelope import Conversation
    from events.payloads import Reply

#: The audit event of an erasure.
ERASED = "privacy.erased"

Progress = Callable[[str], None]


class PrivacyError(Exception):
    """A clear refusal for the operator (unknown person, a service said no)."""


class Operator:
    """The operator's admin identity on the bus for one run of a command."""

    def __init__(self, bus: Bus) -> None:
        from events.envelope import Conversation

        self.bus = bus
        self.conversation = Conversation(channel="system", id=f"cli-{uuid.uuid4().hex[:12]}")

    async def ask(
        self, service: str, action: str, payload: dict[str, Any], *, timeout: float = 30.0
    ) -> Reply:
        """Send ``service`` an intent as the operator and wait for its reply."""
        from events.envelope import Actor, Envelope
        from events.payloads import Reply
        from events.subjects import events_filter, intent_type
        from frontdoor.keys import ClaimKeySettings, claim_issuer
        from frontdoor.settings import FrontdoorSettings

        settings = FrontdoorSettings()
        issuer = claim_issuer(
            ClaimKeySettings(), settings.data_dir if settings.nats() is None else None
        )
        operator = Actor(id="system:cli", name="operator", roles=("admin",))
        where = (self.conversation.channel, self.conversation.id)
        start = await self.bus.last_sequence()
        intent = Envelope.new(
            intent_type(service, action),
            payload,
            conversation=self.conversation,
            actor=operator,
            id=uuid.uuid4(),
            claim=issuer.issue(operator, service, conversation=where),
        )
        await self.bus.publish(intent)
        replies = self.bus.tail(
            events_filter(
                channel="system", conversation_id=self.conversation.id, envelope_type="reply"
            ),
            start + 1,
        )
        try:
            async with asyncio.timeout(timeout):
                async for _seq, env in replies:
                    if env.causation_id == intent.id:
                        return env.payload_as(Reply)
        except TimeoutError:
            raise PrivacyError(
                f"{service} did not answer {action} within {timeout:.0f} s"
            ) from None
        finally:
            await replies.aclose()  # type: ignore[attr-defined]  # an async generator
        raise PrivacyError(f"{service} did not answer {action}")  # pragma: no cover

    async def forget(self) -> None:
        """Purge this run's answers (and management's ``user.roles_changed``, which names the
        erased user) from ``FD_EVENTS``; the ``privacy.erased`` audit event stays."""
        from events.subjects import events_filter

        for kind in ("reply", "user.roles_changed"):
            subject = events_filter(
                channel="system", conversation_id=self.conversation.id, envelope_type=kind
            )
            await self.bus.purge_events(subject)


@dataclass
class Person:
    """Whom a command is about: ``ref`` as given, the user's profile (``user_get``) when they
    are a user, their e-mail, and the actor ids their conversations were written under."""

    ref: str
    profile: dict[str, Any] | None
    email: str | None
    actor_ids: list[str] = field(default_factory=list)


async def find_person(op: Operator, ref: str) -> Person:
    """A registered user (handle, email, identity), a requester by e-mail or a guest by actor
    id; ``PrivacyError`` for an unknown handle."""
    found = await op.ask("management", "user_get", {"user": ref})
    if found.status == "ok":
        data = found.data or {}
        ids = [f"user:{data['handle']}", *data.get("identities", [])]
        return Person(ref=ref, profile=data, email=data.get("email"), actor_ids=ids)
    if found.status == "denied":
        raise PrivacyError(f"management refused: {found.text}")
    if "@" in ref and ":" not in ref:
        return Person(ref=ref, profile=None, email=ref.lower())
    if ":" in ref and not ref.startswith("user:"):
        return Person(ref=ref, profile=None, email=None, actor_ids=[ref])
    raise PrivacyError(
        f"there is no user '{ref}': give a handle, an e-mail address, an identity such as "
        "slack:U123, or a guest's actor id such as guest:w-…"
    )


async def conversations_of_person(
    bus: Bus, person: Person, progress: Progress
) -> list[Conversation]:
    """Every conversation any of the person's actor ids wrote in (one scan each)."""
    from bots.transcripts import conversations_of

    found: list[Conversation] = []
    for actor_id in person.actor_ids:
        progress(f"finding the conversations of {actor_id} …")
        found += [c for c in await conversations_of(bus, actor_id) if c not in found]
    return found


async def transcripts(bus: Bus, conversations: list[Conversation]) -> list[dict[str, Any]]:
    """``[{conversation, entries}]`` for each conversation, entries as JSON."""
    from bots.transcripts import read_transcript

    out = []
    for conversation in conversations:
        entries = await read_transcript(bus, conversation)
        out.append(
            {
                "conversation": conversation.model_dump(mode="json", exclude_none=True),
                "entries": [e.model_dump(mode="json") for e in entries],
            }
        )
    return out


async def export_person(op: Operator, person: Person, progress: Progress) -> dict[str, Any]:
    """Everything about a person: profile, tickets (with comments) and conversations."""
    planned = await op.ask("management", "user_erase", {"person": person.ref, "dry_run": True})
    if planned.status != "ok":
        raise PrivacyError(f"management: {planned.text}")
    tickets = []
    for number in (planned.data or {}).get("ticket_numbers", []):
        got = await op.ask("management", "ticket_get", {"ticket": number})
        if got.status == "ok":
            tickets.append(got.data)
    progress(f"{len(tickets)} ticket(s)")
    conversations = await conversations_of_person(op.bus, person, progress)
    progress(f"{len(conversations)} conversation(s)")
    return {
        "person": person.ref,
        "profile": person.profile,
        "actor_ids": person.actor_ids,
        "tickets": tickets,
        "conversations": await transcripts(op.bus, conversations),
    }


async def purge_conversations(bus: Bus, conversations: list[Conversation]) -> int:
    """Purge ``conversations`` from ``FD_EVENTS`` (every thread) and delete their KV state
    (dialogue state, Slack hand-off threads); returns how many events were removed."""
    from events.kv import VersionedKV
    from events.subjects import CONVERSATIONS_BUCKET, HANDOFFS_BUCKET, events_filter
    from skills.dialogue.state import conversation_key

    states = await VersionedKV.open(bus, CONVERSATIONS_BUCKET)
    handoffs = await VersionedKV.open(bus, HANDOFFS_BUCKET)
    events = 0
    for conversation in conversations:
        subject = events_filter(channel=conversation.channel, conversation_id=conversation.id)
        threads = {conversation.thread, None}
        async for _seq, env in bus.tail(subject, 1, stop_at_end=True):
            events += 1
            threads.add(env.conversation.thread)
        await bus.purge_events(subject)
        for thread in threads:
            state = conversation.model_copy(update={"thread": thread})
            await states.purge(conversation_key(state))
            await _forget_handoff(handoffs, state)
    return events


async def _forget_handoff(handoffs: Any, conversation: Conversation) -> None:
    from bots.handoff import conversation_key as handoff_key
    from bots.seen import kv_key
    from bots.slack.handoff_mirror import HandoffThread

    key = "conv." + kv_key(*handoff_key(conversation))
    found = await handoffs.get(key)
    if found is None:
        return
    record = HandoffThread.model_validate_json(found.value)
    await handoffs.purge("thread." + kv_key(record.slack_channel, record.thread_ts))
    await handoffs.purge(key)


async def erase_conversations(bus: Bus, conversations: list[Conversation], what: str) -> int:
    """Purge ``conversations`` (``purge_conversations``) and publish one ``privacy.erased``
    audit event (counts and a digest, no personal data); returns how many events went."""
    from events.claims import system_actor
    from events.envelope import Conversation, Envelope

    events = await purge_conversations(bus, conversations)
    digest = hashlib.sha256()
    for conversation in conversations:
        digest.update(f"{conversation.channel}\x1f{conversation.id}\x1e".encode())
    audit = Envelope.new(
        ERASED,
        {
            "what": what,
            "conversations": len(conversations),
            "events": events,
            # lets an auditor confirm which erasure this was without the bus keeping the ids
            "digest": digest.hexdigest()[:16],
        },
        conversation=Conversation(channel="system", id="cli"),
        actor=system_actor("cli"),
    )
    await bus.publish(audit)
    return events


@dataclass
class Plan:
    """What erasing a person will remove (shown before the operator confirms)."""

    person: Person
    management: dict[str, Any]
    conversations: list[Conversation]

    def summary(self) -> str:
        """One line of counts."""
        m = self.management
        return (
            f"{'a user record, ' if m.get('user_record') else ''}{m.get('tickets', 0)} "
            f"ticket(s), {m.get('comments', 0)} other comment(s), "
            f"{len(self.conversations)} conversation(s) on the bus"
        )


async def plan_erasure(op: Operator, person: Person, progress: Progress) -> Plan:
    """Management's dry run (refuses the last admin now) and the person's conversations."""
    planned = await op.ask("management", "user_erase", {"person": person.ref, "dry_run": True})
    if planned.status != "ok":
        raise PrivacyError(f"management: {planned.text}")
    conversations = await conversations_of_person(op.bus, person, progress)
    return Plan(person=person, management=planned.data or {}, conversations=conversations)


async def erase_planned(op: Operator, plan: Plan, progress: Progress) -> str:
    """Erase what ``plan`` found; returns what was said (counts only)."""
    from bots.ticket_updates.conversations import TicketConversations
    from events.kv import VersionedKV
    from events.micro import discover
    from events.subjects import TICKET_CONVERSATIONS_BUCKET

    reference = uuid.uuid4().hex[:16]
    progress(f"purging {len(plan.conversations)} conversation(s) from the bus …")
    events = await purge_conversations(op.bus, plan.conversations)
    leads = "marketing: no e-mail address to erase a lead by"
    if plan.person.email and not await discover(op.bus, "PING", "marketing"):
        # an intent nobody takes would keep the address in FD_INTENTS for days
        leads = "marketing: not running, no lead erased (erase it with lead_erase when it runs)"
    elif plan.person.email:
        progress("asking marketing to erase the lead …")
        try:
            said = await op.ask("marketing", "lead_erase", {"email": plan.person.email}, timeout=10)
            leads = f"marketing: {said.text}"
        except PrivacyError as exc:
            leads = f"marketing: not erased ({exc}); erase the lead when it runs"
    progress("asking management to erase its records …")
    erased = await op.ask(
        "management",
        "user_erase",
        {
            "person": plan.person.ref,
            "conversations": len(plan.conversations),
            "events": events,
            "reference": reference,
        },
    )
    if erased.status != "ok":
        raise PrivacyError(f"management: {erased.text}")
    notices = await VersionedKV.open(op.bus, TICKET_CONVERSATIONS_BUCKET)
    for number in plan.management.get("ticket_numbers", []):
        await notices.purge(TicketConversations.key(number))
    return (
        f"management: {erased.text}\n{leads}\n"
        f"bus: erased {len(plan.conversations)} conversation(s) ({events} events) and their state"
    )
