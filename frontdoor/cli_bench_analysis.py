"""``frontdoor bench analysis``: how fast the analysis views replay the bus and answer."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from backend_services.analysis.follower import replay
from backend_services.analysis.metrics import CALCULATORS, compute
from backend_services.analysis.periods import window
from events.bus import Bus
from events.embedded import EmbeddedNats
from events.envelope import Actor, Conversation, Envelope
from events.payloads import IntentDetected, MessageReceived, Reply


async def _publish_turns(bus: Bus, turns: int) -> None:
    pending = []
    for i in range(turns):
        conv = Conversation(channel="web", id=f"bench-{i % 500}")
        msg = Envelope.new(
            "message.received",
            MessageReceived(text="hello"),
            conversation=conv,
            actor=Actor(id=f"u{i % 50}"),
        )
        detected = IntentDetected(
            text="hello",
            intent=f"intent_{i % 7}",
            confidence=0.9,
            engine="bench",
            model_version="1",
            is_fallback=i % 10 == 0,
        )
        for env in (msg, msg.follow("intent.detected", detected), msg.follow("reply", Reply())):
            pending.append(await bus.publish_async(env))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def run(turns: int) -> dict[str, float]:
    """Publish ``turns`` turns (3 events each) to a private server, replay them, query them."""
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedNats(Path(data))
        bus = await Bus.connect(await server.start())
        try:
            await _publish_turns(bus, turns)
            started = time.perf_counter()
            views = await replay(bus)
            replay_s = time.perf_counter() - started
            win = window("all", datetime.now(UTC))
            started = time.perf_counter()
            for metric in CALCULATORS:
                compute(metric, views, win)
            metrics_ms = (time.perf_counter() - started) * 1000
        finally:
            await bus.close()
            await server.stop()
    return {
        "events": float(views.events),
        "replay_seconds": replay_s,
        "replay_events_per_s": views.events / replay_s,
        "all_metrics_ms": metrics_ms,
    }


def register(bench_app: typer.Typer) -> None:
    """Attach ``analysis`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("analysis")
    def bench_analysis(
        turns: int = typer.Option(
            5_000, "--turns", min=10, help="Turns to publish (3 events each)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Replay speed of the analysis views and the time to compute every metric once."""
        result = asyncio.run(run(turns))
        if as_json:
            typer.echo(json.dumps(result))
            return
        typer.echo(
            f"replayed {result['events']:.0f} events in {result['replay_seconds']:.2f} s "
            f"({result['replay_events_per_s']:,.0f} events/s); all 11 metrics in "
            f"{result['all_metrics_ms']:.1f} ms"
        )
