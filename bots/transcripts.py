"""A conversation's transcript, read from the bus: who said what, when, on which channel.

``read_transcript`` reads one conversation's events from ``FD_EVENTS`` in bus order (subject
filter ``fd.event.<channel>.<encoded id>.>``) and turns each that a person would want to read
into a ``TranscriptEntry``: user messages (``message.received``), bot replies (``reply``),
agents' replies (a ``reply`` with ``service="handoff"``, from the Slack thread or the agent
workspace), private notes, hand-off and ticket events. ``entry_of`` maps one envelope (the agent
workspace uses it for live updates too); ``render_text`` makes the plain-text form;
``conversations_of`` finds a person's conversations (for export and erasure).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal, overload

from pydantic import BaseModel, ValidationError

from events.bus import Bus
from events.envelope import Conversation, Envelope
from events.payloads import Reply
from events.subjects import events_filter

EntryKind = Literal["user", "bot", "agent", "note", "system"]


class TranscriptEntry(BaseModel):
    """One line of a transcript (``seq`` is the bus sequence: the order and the position)."""

    seq: int
    at: datetime
    kind: EntryKind
    author: str
    text: str
    channel: str
    type: str
    ticket: int | None = None


_SYSTEM_TEXT = {
    "handoff.started": "asked for a human",
    "handoff.ended": "hand-off ended",
}


def _ticket_number(env: Envelope) -> int | None:
    number = env.payload.get("number", env.payload.get("ticket"))
    return number if isinstance(number, int) else None


def _entry(
    seq: int, env: Envelope, kind: EntryKind, author: str, text: str, ticket: int | None = None
) -> TranscriptEntry:
    return TranscriptEntry(
        seq=seq,
        at=env.occurred_at,
        kind=kind,
        author=author,
        text=text,
        channel=env.conversation.channel,
        type=env.type,
        ticket=ticket,
    )


def entry_of(seq: int, env: Envelope) -> TranscriptEntry | None:
    """The transcript line of ``env``, or ``None`` for events nobody reads (intents detected,
    the hand-off's copies of user messages and workspace answers)."""
    who = env.actor.name or env.actor.id
    payload = env.payload
    if env.type == "message.received":
        return _entry(seq, env, "user", who, str(payload.get("text", "")))
    if env.type == "reply":
        try:
            reply = env.payload_as(Reply)
        except ValidationError:
            return None
        if reply.service == "handoff":
            agent = str((reply.data or {}).get("agent") or who)
            return _entry(seq, env, "agent", agent, reply.text)
        number = (reply.data or {}).get("number") if reply.service == "management" else None
        author = env.conversation.bot or reply.service or "bot"
        return _entry(
            seq, env, "bot", author, reply.text, number if isinstance(number, int) else None
        )
    if env.type == "handoff.note":
        author = str(payload.get("name") or payload.get("author") or who)
        return _entry(seq, env, "note", author, str(payload.get("text", "")))
    if env.type == "handoff.claimed":
        name = str(payload.get("name") or payload.get("agent") or "an agent")
        return _entry(seq, env, "system", who, f"claimed by {name}")
    if env.type == "handoff.ended":
        text = {"closed": "closed", "handback": "handed back to the bot"}.get(
            str(payload.get("outcome")), "no agent could be reached"
        )
        return _entry(seq, env, "system", who, text)
    if env.type == "conversation.rated":
        return _entry(seq, env, "system", who, f"rated {payload.get('score')}/5")
    if env.type in _SYSTEM_TEXT:
        return _entry(seq, env, "system", who, _SYSTEM_TEXT[env.type])
    if env.type.startswith("ticket."):
        number = _ticket_number(env)
        what = env.type.removeprefix("ticket.").replace("_", " ")
        return _entry(seq, env, "system", who, f"ticket #{number} {what}", number)
    return None


async def read_transcript(
    bus: Bus, conversation: Conversation, *, limit: int = 5000
) -> list[TranscriptEntry]:
    """The conversation's transcript in bus order (its last ``limit`` entries)."""
    entries: list[TranscriptEntry] = []
    subject = events_filter(channel=conversation.channel, conversation_id=conversation.id)
    events = bus.tail(subject, 1, stop_at_end=True)
    try:
        async for seq, env in events:
            if env.conversation.thread != conversation.thread:
                continue
            entry = entry_of(seq, env)
            if entry is not None:
                entries.append(entry)
                if len(entries) > limit:
                    del entries[0]
    finally:
        await events.aclose()  # type: ignore[attr-defined]  # an async generator
    return entries


@overload
def render_text(entries: Sequence[TranscriptEntry], /) -> str: ...


@overload
def render_text(conversation: Conversation, entries: Sequence[TranscriptEntry], /) -> str: ...


def render_text(
    first: Conversation | Sequence[TranscriptEntry],
    entries: Sequence[TranscriptEntry] | None = None,
    /,
) -> str:
    """A plain-text transcript: a heading, then one line per entry (UTC time, who, what).

    ``render_text(entries)`` names the conversation from the entries' channel;
    ``render_text(conversation, entries)`` names it fully (id and thread).
    """
    if isinstance(first, Conversation):
        conversation: Conversation | None = first
        lines_of = list(entries or [])
    else:
        conversation, lines_of = None, list(first)
    if conversation is not None:
        where = f"the {conversation.channel} conversation {conversation.id}"
        if conversation.thread:
            where += f" (thread {conversation.thread})"
    elif lines_of:
        where = f"a {lines_of[0].channel} conversation"
    else:
        where = "a conversation"
    lines = [f"Transcript of {where}", ""]
    for e in lines_of:
        who = {"user": e.author, "bot": f"{e.author} (bot)", "agent": f"{e.author} (agent)"}.get(
            e.kind, f"[{e.kind}] {e.author}"
        )
        text = e.text.replace("\n", "\n    ")
        lines.append(f"{e.at.strftime('%Y-%m-%d %H:%M:%S')} UTC  {who}: {text}")
    if not lines_of:
        lines.append("(nothing: the bus keeps no event of it)")
    return "\n".join(lines) + "\n"


async def conversations_of(bus: Bus, actor_id: str, *, limit: int = 10_000) -> list[Conversation]:
    """Every conversation (channel, id, thread) in which ``actor_id`` sent a message that the bus
    still keeps, oldest first (at most ``limit`` of them).

    Cost: one ordered read of every ``message.received`` event of ``FD_EVENTS`` (the server
    filters the subjects; within its retention, 30 days or 4 GiB), every one decoded here:
    seconds for a million events. An operator's command (export, erasure), never on a turn's
    path.
    """
    found: dict[tuple[str, str, str | None], Conversation] = {}
    events = bus.tail(events_filter(envelope_type="message.received"), 1, stop_at_end=True)
    try:
        async for _seq, env in events:
            if env.actor.id != actor_id:
                continue
            c = env.conversation
            key = (c.channel, c.id, c.thread)
            if key not in found:
                found[key] = Conversation(channel=c.channel, id=c.id, thread=c.thread)
                if len(found) >= limit:
                    break
    finally:
        await events.aclose()  # type: ignore[attr-defined]  # an async generator
    return list(found.values())


#: Asks management ``action`` with ``payload`` for whoever exports; returns the reply's data.
AskManagement = Callable[[str, dict[str, Any]], Awaitable[Any]]


async def person_document(bus: Bus, ask: AskManagement, person: str) -> dict[str, Any]:
    """Everything about a registered person: their user record, the tickets they requested
    (each with its comments and history) and the transcript of every conversation of each
    identity they were proven by (within the bus's retention). ``ask`` raises when management
    refuses (an unknown person, a caller who may not)."""
    user = await ask("user_get", {"user": person}) or {}
    tickets: list[Any] = []
    if user.get("email"):
        listed = await ask("ticket_search", {"requester": user["email"], "limit": 100}) or {}
        for item in listed.get("items", []):
            full = await ask("ticket_get", {"ticket": item.get("number")}) or item
            history = await ask("ticket_history", {"ticket": item.get("number")})
            tickets.append({**full, "history": history})
    conversations: list[dict[str, Any]] = []
    for actor_id in [f"user:{user.get('handle')}", *user.get("identities", [])]:
        for conversation in await conversations_of(bus, actor_id):
            entries = await read_transcript(bus, conversation)
            conversations.append(
                {
                    "conversation": conversation.model_dump(mode="json", exclude_none=True),
                    "entries": [e.model_dump(mode="json") for e in entries],
                }
            )
    return {"user": user, "tickets": tickets, "conversations": conversations}
