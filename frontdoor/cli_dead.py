"""``frontdoor dead``: intents given up on (dead letters), listed and replayed by an operator.

``list`` shows each with why it died; ``replay`` publishes it again for its service with a new
id (so it runs once more) and a claim the operator's signing key signs for the original actor
and conversation; the answer reaches that conversation like any other, and the dead letter is
removed. See docs/spine.md ("Dead letters").
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

dead_app = typer.Typer(help="Intents given up on: list them, replay them (docs/spine.md).")
console = Console()

NATS_OPTION = typer.Option(None, "--nats-url", help="NATS to use [NATS_URL]")
DATA_DIR_OPTION = typer.Option(None, "--data-dir", help="Where `frontdoor up` runs")


def register(app: typer.Typer) -> None:
    """Attach ``frontdoor dead ...``."""
    app.add_typer(dead_app, name="dead")


async def _bus(nats_url: str | None, data_dir: Path | None) -> Any:
    from events.bus import Bus
    from frontdoor.cli_up import attach_url

    url = attach_url(nats_url, data_dir)
    return await Bus.connect(url, name="frontdoor-dead")


async def _list(nats_url: str | None, data_dir: Path | None, service: str | None) -> list[Any]:
    from events.dead import list_dead

    bus = await _bus(nats_url, data_dir)
    try:
        return await list_dead(bus, service)
    finally:
        await bus.close()


@dead_app.command("list")
def list_(
    service: str = typer.Option(None, "--service", help="Only this service's"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Every dead letter, oldest first: sequence, when, service.action, why, tries, who."""
    letters = asyncio.run(_list(nats_url, data_dir, service))
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "seq": d.seq,
                        "dead_at": d.dead_at.isoformat(),
                        "service": d.service,
                        "action": d.action,
                        "reason": d.reason,
                        "deliveries": d.deliveries,
                        "error": d.error,
                        "intent_id": str(d.intent.id),
                        "conversation": f"{d.intent.conversation.channel}:"
                        f"{d.intent.conversation.id}",
                        "actor": d.intent.actor.id,
                        "payload": d.intent.payload,
                    }
                    for d in letters
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("seq", "dead at", "intent", "why", "tries", "actor", "conversation"):
        table.add_column(column)
    for d in letters:
        table.add_row(
            str(d.seq),
            f"{d.dead_at:%Y-%m-%d %H:%M:%S}",
            f"{d.service}.{d.action}",
            f"{d.reason}: {d.error}",
            str(d.deliveries),
            d.intent.actor.id,
            f"{d.intent.conversation.channel}:{d.intent.conversation.id}",
        )
    console.print(table)


async def _replay(
    nats_url: str | None, data_dir: Path | None, seqs: list[int], everything: bool
) -> list[str]:
    from events import subjects
    from events.dead import get_dead, list_dead, remove_dead
    from frontdoor.keys import ClaimKeySettings, claim_issuer
    from frontdoor.settings import FrontdoorSettings

    settings = FrontdoorSettings() if data_dir is None else FrontdoorSettings(data_dir=data_dir)
    keys_from = settings.data_dir if settings.nats() is None else None
    issuer = claim_issuer(ClaimKeySettings(), keys_from)
    bus = await _bus(nats_url, data_dir)
    done: list[str] = []
    try:
        letters = (
            await list_dead(bus)
            if everything
            else [d for seq in seqs if (d := await get_dead(bus, seq)) is not None]
        )
        for letter in letters:
            intent = letter.intent
            conv = intent.conversation
            replayed = intent.model_copy(
                update={
                    "id": uuid.uuid5(intent.id, f"replay:{letter.seq}"),
                    "claim": issuer.issue(
                        intent.actor, letter.service, conversation=(conv.channel, conv.id)
                    ),
                }
            )
            assert subjects.parse_intent_type(replayed.type) is not None
            await bus.publish(replayed)
            await remove_dead(bus, letter.seq)
            done.append(f"{letter.seq}: {letter.service}.{letter.action} as {intent.actor.id}")
        return done
    finally:
        await bus.close()


@dead_app.command("replay")
def replay(
    seqs: list[int] = typer.Argument(None, help="Sequences from `frontdoor dead list`"),
    everything: bool = typer.Option(False, "--all", help="Replay every dead letter"),
    nats_url: str = NATS_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Publish dead letters again (a new id, a fresh claim for the original actor)."""
    if not seqs and not everything:
        console.print("[red]error:[/red] name the sequences to replay, or --all")
        raise typer.Exit(2)
    done = asyncio.run(_replay(nats_url, data_dir, list(seqs or []), everything))
    for line in done:
        console.print(f"replayed {line}")
    console.print(f"{len(done)} replayed")
