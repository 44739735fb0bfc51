"""``frontdoor transcript`` and ``frontdoor erase``: a conversation or a person, exported or
erased by an operator (docs/security.md, *Privacy*). The work is in ``frontdoor.privacy``.

A transcript is read from ``FD_EVENTS`` (``bots.transcripts``); a person's export adds their
profile and tickets from management. Erasing a conversation purges its subjects from
``FD_EVENTS`` and its KV state; erasing a user does that for each of their conversations and
erases their records in management and marketing. Each erasure leaves one ``privacy.erased``
audit event that holds counts, never a name, an id or a text.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from frontdoor.privacy import ERASED

if TYPE_CHECKING:
    from events.bus import Bus
    from events.envelope import Conversation

transcript_app = typer.Typer(
    help="Export transcripts and everything about a person: one conversation (from the event "
    "bus), every conversation of an actor, or a user with their profile, tickets and "
    "conversations (docs/security.md, Privacy)."
)
erase_app = typer.Typer(
    help="Erase a conversation, an actor's conversations, or a person everywhere (records, "
    "leads, the bus, KV state), with one audit event privacy.erased that names nobody "
    "(docs/security.md, Privacy)."
)

NATS_OPTION = typer.Option(None, "--nats-url", help="NATS to use [NATS_URL]")
DATA_DIR_OPTION = typer.Option(None, "--data-dir", help="Where `frontdoor up` runs")
THREAD_OPTION = typer.Option(None, "--thread", help="The thread (Slack: the thread's ts)")
OUT_OPTION = typer.Option(None, "--out", help="Write to this file instead of stdout")
YES_OPTION = typer.Option(False, "--yes", help="Do not ask for confirmation")
PERSON_ARGUMENT = typer.Argument(
    ...,
    help="A user (handle, email, identity such as slack:U1, user:alice), a requester's email, "
    "or a guest's actor id (guest:w-…)",
)

Format = Literal["text", "json"]


def register(app: typer.Typer) -> None:
    """Attach ``frontdoor transcript ...`` and ``frontdoor erase ...``."""
    app.add_typer(transcript_app, name="transcript")
    app.add_typer(erase_app, name="erase")


async def _bus(nats_url: str | None, data_dir: Path | None) -> Bus:
    from events.bus import Bus
    from frontdoor.cli_up import attach_url

    return await Bus.connect(attach_url(nats_url, data_dir), name="frontdoor-privacy")


def _progress(text: str) -> None:
    typer.echo(text, err=True)


def _fail(text: str) -> typer.Exit:
    typer.secho(f"error: {text}", err=True, fg="red")
    return typer.Exit(1)


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
    from frontdoor.privacy import transcripts

    if fmt == "json":
        body = {"conversations": await transcripts(bus, conversations)}
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    parts = [render_text(c, await read_transcript(bus, c)) for c in conversations]
    return "\n".join(parts)


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
    fmt: str = typer.Option("text", "--format", help="text or json"),
    out: Path = OUT_OPTION,
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
    fmt: str = typer.Option("text", "--format", help="text or json"),
    out: Path = OUT_OPTION,
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Every conversation in which ``actor_id`` wrote (within the bus's retention), each with
    its transcript. A user's profile and tickets too: `frontdoor transcript user`."""
    chosen = _check_format(fmt)

    async def go() -> str:
        from bots.transcripts import conversations_of

        bus = await _bus(nats_url, data_dir)
        try:
            _progress(f"finding the conversations of {actor_id} …")
            found = await conversations_of(bus, actor_id)
            _progress(f"{len(found)} conversation(s)")
            return await _export(bus, found, chosen)
        finally:
            await bus.close()

    _write(asyncio.run(go()), out)


def _person_text(export: dict[str, Any]) -> str:
    from bots.transcripts import TranscriptEntry, render_text
    from events.envelope import Conversation

    lines = [f"Everything Frontdoor keeps about {export['person']}", ""]
    profile = export.get("profile")
    if profile:
        lines.append("Profile")
        for key in ("handle", "name", "email", "roles", "identities", "active"):
            if profile.get(key) not in (None, [], ""):
                value = profile[key]
                shown = ", ".join(value) if isinstance(value, list) else value
                lines.append(f"  {key}: {shown}")
        lines.append("")
    lines.append(f"Tickets ({len(export['tickets'])})")
    for t in export["tickets"]:
        lines.append(f"  #{t['number']} [{t['status']}] {t['subject']} ({t['created_at']})")
        for c in t.get("comments", []):
            who = c.get("author_name") or c.get("author")
            lines.append(f"      {c.get('created_at', '')} {who}: {c.get('body', '')}")
    lines.append("")
    lines.append(f"Conversations ({len(export['conversations'])})")
    for item in export["conversations"]:
        conversation = Conversation.model_validate(item["conversation"])
        entries = [TranscriptEntry.model_validate(e) for e in item["entries"]]
        lines.append("")
        lines.append(render_text(conversation, entries).rstrip("\n"))
    return "\n".join(lines) + "\n"


@transcript_app.command("user")
def user(
    person: str = PERSON_ARGUMENT,
    fmt: str = typer.Option("json", "--format", help="json or text"),
    out: Path = OUT_OPTION,
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Everything about a person (a subject access request): their profile (management
    `user_get`), the tickets they requested with every comment (`ticket_get`), and the
    transcript of every conversation they wrote in that the bus still keeps (30 days).
    Acts as an admin; the services' answers are purged from the bus afterwards."""
    chosen = _check_format(fmt)

    async def go() -> dict[str, Any]:
        from frontdoor.privacy import Operator, export_person, find_person

        bus = await _bus(nats_url, data_dir)
        op = Operator(bus)
        try:
            _progress(f"looking {person} up in management …")
            found = await find_person(op, person)
            return await export_person(op, found, _progress)
        finally:
            try:
                await op.forget()
            finally:
                await bus.close()

    export = _run_privately(go)
    if chosen == "json":
        _write(json.dumps(export, indent=2, ensure_ascii=False, default=str) + "\n", out)
    else:
        _write(_person_text(export), out)


def _run_privately(go: Any) -> Any:
    from frontdoor.privacy import PrivacyError

    try:
        return asyncio.run(go())
    except PrivacyError as exc:
        raise _fail(str(exc)) from None


def _confirm(prompt: str, yes: bool) -> None:
    if not yes and not typer.confirm(prompt, default=False, err=True):
        typer.echo("nothing erased", err=True)
        raise typer.Exit(1)


@erase_app.command("conversation")
def erase_conversation(
    channel: str = typer.Argument(..., help="web, rest, slack, api"),
    conversation_id: str = typer.Argument(..., help="The channel's conversation id"),
    thread: str = THREAD_OPTION,
    yes: bool = YES_OPTION,
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Erase one conversation: its events on the bus (every thread), its dialogue state and
    hand-off thread mapping."""
    from frontdoor.privacy import erase_conversations

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
    yes: bool = YES_OPTION,
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Erase every conversation in which ``actor_id`` wrote (the bus and KV state) and nothing
    else. A person's records too: `frontdoor erase user`."""
    from frontdoor.privacy import erase_conversations

    async def go() -> tuple[int, int]:
        from bots.transcripts import conversations_of

        bus = await _bus(nats_url, data_dir)
        try:
            _progress(f"finding the conversations of {actor_id} …")
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


def _erase_user(person: str, yes: bool, nats_url: str | None, data_dir: Path | None) -> None:
    async def go() -> str:
        from frontdoor.privacy import Operator, erase_planned, find_person, plan_erasure

        bus = await _bus(nats_url, data_dir)
        op = Operator(bus)
        try:
            _progress(f"looking {person} up in management …")
            found = await find_person(op, person)
            plan = await plan_erasure(op, found, _progress)
            _progress(f"will erase {plan.summary()}")
            await asyncio.to_thread(_confirm, f"Erase {person} and all of this for good?", yes)
            return await erase_planned(op, plan, _progress)
        finally:
            try:
                await op.forget()
            finally:
                await bus.close()

    said = _run_privately(go)
    typer.echo(f"{said}\naudit event {ERASED} published by management (counts only)")


@erase_app.command("user")
def erase_user(
    person: str = PERSON_ARGUMENT,
    yes: bool = YES_OPTION,
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Erase a person everywhere: management's records (the tickets they requested with
    comments and history, their comments elsewhere, their name in other tickets' history, their
    user record with roles, identities, API keys), marketing's lead with their e-mail, and
    every conversation on the bus of each identity they were proven by, with its KV state.
    Shows what will go and asks first (unless --yes); one `privacy.erased` audit event
    (counts and a reference, nobody's name). Acts as an admin; needs management running."""
    _erase_user(person, yes, nats_url, data_dir)


@erase_app.command("person", hidden=True)
def erase_person(
    person: str = PERSON_ARGUMENT,
    yes: bool = YES_OPTION,
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """The former name of `frontdoor erase user`."""
    _erase_user(person, yes, nats_url, data_dir)
