"""``frontdoor transcript`` and ``frontdoor erase``: what the bus keeps of a conversation or a
person, exported or erased by an operator (docs/security.md, *Privacy*).

A transcript is read from ``FD_EVENTS`` (``bots.transcripts``). Erasing a conversation purges
its subjects from ``FD_EVENTS`` and deletes its dialogue state from the KV bucket
``fd_conversations``; erasing an actor does that for every conversation in which the actor
wrote. Each erasure publishes one ``privacy.erased`` audit event on the ``system`` channel that
holds counts and a digest of what was erased, never the ids or texts themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

if TYPE_CHECKING:
    from events.bus import Bus
    from events.envelope import Conversation

transcript_app = typer.Typer(
    help="Export transcripts from the event bus: one conversation, or every conversation of "
    "an actor (docs/security.md, Privacy)."
)
erase_app = typer.Typer(
    help="Erase what the bus and the dialogue state keep of a conversation or an actor, with "
    "an audit event (docs/security.md, Privacy)."
)

NATS_OPTION = typer.Option(None, "--nats-url", help="NATS to use [NATS_URL]")
DATA_DIR_OPTION = typer.Option(None, "--data-dir", help="Where `frontdoor up` runs")
FORMAT_OPTION = typer.Option("text", "--format", help="text or json")
THREAD_OPTION = typer.Option(None, "--thread", help="The thread (Slack: the thread's ts)")
#: The audit event of an erasure.
ERASED = "privacy.erased"

Format = Literal["text", "json"]


def register(app: typer.Typer) -> None:
    """Attach ``frontdoor transcript ...`` and ``frontdoor erase ...``."""
    app.add_typer(transcript_app, name="transcript")
    app.add_typer(erase_app, name="erase")


async def _bus(nats_url: str | None, data_dir: Path | None) -> Bus:
    from events.bus import Bus
    from frontdoor.cli_up import attach_url

    return await Bus.connect(attach_url(nats_url, data_dir), name="frontdoor-privacy")


def _conversation(channel: str, conversation_id: str, thread: str | None) -> Conversation:
    from events.envelope import Conversation

    try:
        return Conversation(channel=channel, id=conversation_id, thread=thread)  # type: ignore[arg-type]
    except ValueError as exc:
        raise typer.BadParameter(
            f"not a conversation: channel must be web, rest, slack, api or system ({exc})"
        ) from None


async def _export(bus: Bus, conversations: list[Conversation], fmt: Format) -> str:
    from bots.transcripts import read_transcript, render_text

    parts: list[str] = []
    dumped: list[dict[str, Any]] = []
    for conversation in conversations:
        entries = await read_transcript(bus, conversation)
        if fmt == "text":
            parts.append(render_text(conversation, entries))
        else:
            dumped.append(
                {
                    "conversation": conversation.model_dump(mode="json", exclude_none=True),
                    "entries": [e.model_dump(mode="json") for e in entries],
                }
            )
    if fmt == "text":
        return "\n".join(parts)
    return json.dumps({"conversations": dumped}, indent=2, ensure_ascii=False) + "\n"


def _check_format(fmt: str) -> Format:
    if fmt not in ("text", "json"):
        raise typer.BadParameter("--format must be text or json")
    return fmt  # type: ignore[return-value]


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@transcript_app.command("show")
def show(
    channel: str = typer.Argument(..., help="web, rest, slack, api"),
    conversation_id: str = typer.Argument(..., help="The channel's conversation id"),
    thread: str = THREAD_OPTION,
    fmt: str = FORMAT_OPTION,
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """One conversation's transcript (user, bot and agent turns, notes, hand-off and ticket
    events), in bus order."""
    conversation = _conversation(channel, conversation_id, thread)
    chosen = _check_format(fmt)

    async def go() -> str:
        bus = await _bus(nats_url, data_dir)
        try:
            return await _export(bus, [conversation], chosen)
        finally:
            await bus.close()

    _write(asyncio.run(go()), out)


@transcript_app.command("actor")
def actor(
    actor_id: str = typer.Argument(..., help="A proven actor id: slack:U1, site:42, guest:…"),
    fmt: str = FORMAT_OPTION,
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Every conversation in which ``actor_id`` wrote (within the bus's retention), each with
    its transcript. Tickets and the user's record are management's: `frontdoor users show`."""
    chosen = _check_format(fmt)

    async def go() -> str:
        from bots.transcripts import conversations_of

        bus = await _bus(nats_url, data_dir)
        try:
            typer.echo(f"finding the conversations of {actor_id} …", err=True)
            found = await conversations_of(bus, actor_id)
            typer.echo(f"{len(found)} conversation(s)", err=True)
            return await _export(bus, found, chosen)
        finally:
            await bus.close()

    _write(asyncio.run(go()), out)


async def erase_conversations(bus: Bus, conversations: list[Conversation], what: str) -> int:
    """Purge ``conversations`` from ``FD_EVENTS``, delete their dialogue state, and publish one
    ``privacy.erased`` audit event (counts and a digest, no personal data); returns how many
    events were removed."""
    from events.claims import system_actor
    from events.envelope import Conversation, Envelope
    from events.kv import VersionedKV
    from events.subjects import CONVERSATIONS_BUCKET, events_filter
    from skills.dialogue.state import conversation_key

    states = await VersionedKV.open(bus, CONVERSATIONS_BUCKET)
    events = 0
    digest = hashlib.sha256()
    for conversation in conversations:
        subject = events_filter(channel=conversation.channel, conversation_id=conversation.id)
        events += sum([1 async for _ in bus.tail(subject, 1, stop_at_end=True)])
        await bus.purge_events(subject)
        for thread in {conversation.thread, None}:
            state = conversation.model_copy(update={"thread": thread})
            await states.purge(conversation_key(state))
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


def _confirm(prompt: str, yes: bool) -> None:
    if not yes and not typer.confirm(prompt, default=False):
        typer.echo("nothing erased", err=True)
        raise typer.Exit(1)


@erase_app.command("conversation")
def erase_conversation(
    channel: str = typer.Argument(..., help="web, rest, slack, api"),
    conversation_id: str = typer.Argument(..., help="The channel's conversation id"),
    thread: str = THREAD_OPTION,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Erase one conversation: its events on the bus (every thread) and its dialogue state."""
    conversation = _conversation(channel, conversation_id, thread)
    _confirm(f"Erase the {channel} conversation {conversation_id} for good?", yes)

    async def go() -> int:
        bus = await _bus(nats_url, data_dir)
        try:
            return await erase_conversations(bus, [conversation], "conversation")
        finally:
            await bus.close()

    removed = asyncio.run(go())
    typer.echo(f"erased 1 conversation ({removed} events); audit event {ERASED} published")


@erase_app.command("actor")
def erase_actor(
    actor_id: str = typer.Argument(..., help="A proven actor id: slack:U1, site:42, guest:…"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Erase every conversation in which ``actor_id`` wrote (the bus and dialogue state).
    Tickets and the user's record stay with management (docs/security.md, Privacy)."""

    async def go() -> tuple[int, int]:
        from bots.transcripts import conversations_of

        bus = await _bus(nats_url, data_dir)
        try:
            typer.echo(f"finding the conversations of {actor_id} …", err=True)
            found = await conversations_of(bus, actor_id)
            if not found:
                return 0, 0
            _confirm(f"Erase {len(found)} conversation(s) of {actor_id} for good?", yes)
            return len(found), await erase_conversations(bus, found, "actor")
        finally:
            await bus.close()

    count, removed = asyncio.run(go())
    if not count:
        typer.echo(f"the bus keeps no conversation of {actor_id}: nothing to erase")
        return
    typer.echo(f"erased {count} conversation(s) ({removed} events); audit event {ERASED} published")


async def _ask_management(bus: Bus, action: str, payload: dict[str, Any]) -> Any:
    """Send management an intent as the operator (an admin claim signed with the gateway's key,
    like `frontdoor dead replay`) and wait for its reply on the bus."""
    import uuid

    from events.envelope import Actor, Conversation, Envelope
    from events.payloads import Reply
    from events.subjects import events_filter, intent_type
    from frontdoor.keys import ClaimKeySettings, claim_issuer
    from frontdoor.settings import FrontdoorSettings

    settings = FrontdoorSettings()
    issuer = claim_issuer(
        ClaimKeySettings(), settings.data_dir if settings.nats() is None else None
    )
    operator = Actor(id="system:cli", name="operator", roles=("admin",))
    conversation = Conversation(channel="system", id="cli")
    start = await bus.last_sequence()
    intent = Envelope.new(
        intent_type("management", action),
        payload,
        conversation=conversation,
        actor=operator,
        id=uuid.uuid4(),
        claim=issuer.issue(operator, "management", conversation=("system", "cli")),
    )
    await bus.publish(intent)
    replies = bus.tail(
        events_filter(channel="system", conversation_id="cli", envelope_type="reply"), start + 1
    )
    try:
        async with asyncio.timeout(30):
            async for _seq, env in replies:
                if env.causation_id == intent.id:
                    return env.payload_as(Reply)
    finally:
        await replies.aclose()  # type: ignore[attr-defined]  # an async generator
    raise RuntimeError("management did not answer")  # pragma: no cover (timeout raises first)


@erase_app.command("person")
def erase_person(
    person: str = typer.Argument(
        ..., help="A user (handle, email, slack:U1, ...) or a requester's email"
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Erase a person everywhere: management's records (their tickets with comments and
    history, their comments elsewhere, their user record, roles, identities, API keys) and every
    conversation on the bus of each identity they were proven by, with the dialogue state."""
    _confirm(f"Erase {person} and everything about them for good?", yes)

    async def go() -> tuple[str, int, int]:
        from bots.transcripts import conversations_of

        bus = await _bus(nats_url, data_dir)
        try:
            actors: list[str] = []
            found = await _ask_management(bus, "user_get", {"user": person})
            if found.status == "ok":
                data = found.data or {}
                actors = [f"user:{data['handle']}", *data.get("identities", [])]
            erased = await _ask_management(bus, "user_erase", {"person": person})
            if erased.status != "ok":
                typer.echo(f"management: {erased.text}", err=True)
                raise typer.Exit(1)
            conversations: list[Conversation] = []
            for actor_id in actors:
                typer.echo(f"finding the conversations of {actor_id} …", err=True)
                conversations += await conversations_of(bus, actor_id)
            removed = (
                await erase_conversations(bus, conversations, "person") if conversations else 0
            )
            return erased.text, len(conversations), removed
        finally:
            await bus.close()

    said, count, removed = asyncio.run(go())
    typer.echo(f"{said} Erased {count} conversation(s) ({removed} events) from the bus.")


@transcript_app.command("person")
def export_person(
    person: str = typer.Argument(..., help="A user: handle, email, or identity such as slack:U1"),
    out: Path = typer.Option(None, "--out", help="Write to this file instead of stdout"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Everything about a person, as JSON: their user record (management), the tickets they
    requested with comments and history, and the transcript of every conversation of each
    identity they were proven by (within the bus's retention)."""

    async def go() -> str:
        from bots.transcripts import person_document

        bus = await _bus(nats_url, data_dir)

        async def ask(action: str, payload: dict[str, Any]) -> Any:
            reply = await _ask_management(bus, action, payload)
            if reply.status != "ok":
                typer.echo(f"management ({action}): {reply.text}", err=True)
                raise typer.Exit(1)
            return reply.data

        try:
            document = await person_document(bus, ask, person)
            return json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
        finally:
            await bus.close()

    _write(asyncio.run(go()), out)
