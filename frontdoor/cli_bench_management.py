"""``frontdoor bench management``: CPU and latency of management's ticket path.

Starts an embedded nats-server and ``frontdoor serve management`` (its own process, on a fresh
SQLite file), then fires ``--concurrency`` concurrent clients, each (as a new web user) asking
``resolve_actor`` (micro request), opening a ticket and reading it back (intents answered on
FD_EVENTS). Reports, per action, the management process's CPU per call and the latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import typer
from rich.console import Console
from rich.table import Table

from events import subjects
from events.bus import Bus
from events.claims import ClaimIssuer, KeyRing, SigningKey, system_actor
from events.embedded import EmbeddedNats, free_port
from events.envelope import Actor, Conversation, Envelope
from events.micro import ServiceClient
from frontdoor.bench_bus import ReplyWaiter
from frontdoor.eventloop import run
from frontdoor.proc_cpu import process_cpu_seconds

CHANNEL: Final = "web"
#: The bench channel's replies: each intent's reply payload, by correlation id.
Replies = ReplyWaiter[dict[str, Any]]
#: The bench plays the gateway: it signs claims with a key the management process trusts.
_KEY = SigningKey.generate()
_ISSUER = ClaimIssuer(_KEY)


@dataclass
class PhaseResult:
    """One action measured: calls, CPU of the management process per call, latency."""

    action: str
    calls: int
    cpu_ms_per_call: float | None
    p50_ms: float
    p99_ms: float
    calls_per_s: float


async def _intent(
    bus: Bus, replies: Replies, actor: Actor, action: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """Send an intent in the actor's own conversation; its ``ok`` reply's JSON."""
    conversation = Conversation(channel=CHANNEL, id=f"c-{actor.id}")
    env = Envelope.new(
        subjects.intent_type("management", action),
        payload,
        conversation=conversation,
        actor=actor,
        claim=_ISSUER.issue(actor, "management", conversation=(CHANNEL, conversation.id)),
    )
    answered = replies.expect(env.correlation_id)
    await bus.publish(env)
    reply = await asyncio.wait_for(answered, 60)
    if reply.get("status") != "ok":
        raise RuntimeError(f"{action} failed: {reply.get('text')}")
    return reply


async def _resolve(bus: Bus, actor_id: str) -> dict[str, Any]:
    """``resolve_actor`` on the request/reply door, as the front door asks it."""
    client = ServiceClient(bus, _ISSUER, timeout=30)
    reply = await client.call(
        "management", "resolve_actor", {"actor": actor_id}, system_actor("gateway")
    )
    if reply.status != "ok":
        raise RuntimeError(f"resolve_actor failed: {reply.text}")
    return reply.model_dump(mode="json")


async def _phase(
    action: str, pid: int, concurrency: int, calls: list[Callable[[], Awaitable[Any]]]
) -> PhaseResult:
    """Run ``calls`` (coroutine factories) ``concurrency`` at a time; measure CPU and latency."""
    samples: list[float] = []
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            make = queue.pop()
            sent = time.perf_counter()
            await make()
            samples.append((time.perf_counter() - sent) * 1000)

    cpu0 = process_cpu_seconds(pid)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu1 = process_cpu_seconds(pid)
    samples.sort()
    cpu = (cpu1 - cpu0) * 1000 / len(calls) if cpu0 is not None and cpu1 is not None else None
    return PhaseResult(
        action=action,
        calls=len(calls),
        cpu_ms_per_call=cpu,
        p50_ms=samples[len(samples) // 2],
        p99_ms=samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        calls_per_s=len(calls) / elapsed,
    )


async def _round(bus: Bus, replies: Replies, pid: int, concurrency: int) -> list[PhaseResult]:
    """One round on new users: resolve each, each opens a ticket, then reads it back."""
    tag = uuid.uuid4().hex[:6]
    actors = [
        Actor(id=f"site:bench-{tag}-{i}", name=f"User {i}", roles=("user",))
        for i in range(concurrency * 4)
    ]
    numbers: dict[str, int] = {}

    async def resolve(actor: Actor) -> None:
        await _resolve(bus, actor.id)

    async def create(actor: Actor) -> None:
        payload = {
            "subject": "VPN drops every hour",
            "description": "Since Monday the VPN disconnects.",
            "requester_email": f"{actor.id.partition(':')[2]}@example.com",
            "priority": "high",
        }
        reply = await _intent(bus, replies, actor, "ticket_create", payload)
        numbers[actor.id] = reply["data"]["number"]

    async def get(actor: Actor) -> None:
        await _intent(bus, replies, actor, "ticket_get", {"ticket": numbers[actor.id]})

    return [
        await _phase(name, pid, concurrency, [functools.partial(call, a) for a in actors])
        for name, call in (
            ("resolve_actor", resolve),
            ("ticket_create", create),
            ("ticket_get", get),
        )
    ]


async def run_bench(
    concurrency: int, rounds: int, database_url: str | None = None
) -> list[PhaseResult]:
    """Start nats + the management process, warm up, then measure each action.

    ``database_url``: management's database (default: a fresh SQLite file).
    """
    with tempfile.TemporaryDirectory(prefix="fd-bench-mgmt-") as tmp:
        root = Path(tmp)
        public_keys = root / "claims-public.jwks.json"
        public_keys.write_text(json.dumps(KeyRing([_KEY.public]).to_jwks()))
        nats_server = EmbeddedNats(root / "nats")
        await nats_server.start()
        env = {
            **os.environ,
            "NATS_URL": nats_server.url,
            "FRONTDOOR_DATA_DIR": str(root / "data"),
            "FRONTDOOR_MANAGEMENT_DATABASE_URL": database_url
            or f"sqlite+aiosqlite:///{root / 'mgmt.db'}",
            "FRONTDOOR_PORT": str(free_port()),
            "FRONTDOOR_LOG_LEVEL": "warning",
            "FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE": str(public_keys),
        }
        env.pop("FRONTDOOR_CLAIMS_PUBLIC_KEYS", None)
        env.pop("FRONTDOOR_DATABASE_URL", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "frontdoor.cli",
            "serve",
            "management",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )
        bus = await Bus.connect(nats_server.url, name="bench-management")
        replies: Replies = ReplyWaiter(
            bus,
            subjects.events_filter(channel=CHANNEL, envelope_type="reply"),
            lambda env: env.payload,
        )
        try:
            for _ in range(300):  # wait until the service answers
                with contextlib.suppress(Exception):
                    await _resolve(bus, "site:warmup")
                    break
                if proc.returncode is not None:
                    raise RuntimeError("the management process exited")
                await asyncio.sleep(0.1)
            await replies.start()
            await _round(bus, replies, proc.pid, concurrency)  # warm-up
            results: list[PhaseResult] = []
            for _ in range(rounds):
                results.extend(await _round(bus, replies, proc.pid, concurrency))
            return _merge(results)
        finally:
            await replies.stop()
            await bus.close()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            await nats_server.stop()


def _merge(results: list[PhaseResult]) -> list[PhaseResult]:
    """One line per action: CPU averaged over rounds, latency of the median round."""
    merged: list[PhaseResult] = []
    for action in ("resolve_actor", "ticket_create", "ticket_get"):
        mine = [r for r in results if r.action == action]
        cpus = [r.cpu_ms_per_call for r in mine if r.cpu_ms_per_call is not None]
        mine.sort(key=lambda r: r.p99_ms)
        mid = mine[len(mine) // 2]
        merged.append(
            PhaseResult(
                action=action,
                calls=sum(r.calls for r in mine),
                cpu_ms_per_call=sum(cpus) / len(cpus) if cpus else None,
                p50_ms=mid.p50_ms,
                p99_ms=mid.p99_ms,
                calls_per_s=sum(r.calls_per_s for r in mine) / len(mine),
            )
        )
    return merged


def register(bench_app: typer.Typer) -> None:
    """Attach ``management`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("management")
    def bench_management(
        concurrency: int = typer.Option(50, "--concurrency", min=1, help="Concurrent clients."),
        rounds: int = typer.Option(3, "--rounds", min=1, help="Measured rounds (after warm-up)."),
        database_url: str = typer.Option(
            None, "--database-url", help="Management's database (default: a fresh SQLite file)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """CPU per call and latency of resolve_actor, ticket_create and ticket_get."""
        results = run(run_bench(concurrency, rounds, database_url))
        if as_json:
            print(json.dumps([r.__dict__ for r in results], indent=2))
            return
        table = Table(
            title=f"frontdoor bench management ({concurrency} concurrent, "
            f"{'SQLite' if database_url is None else 'given database'}, "
            f"{concurrency * 4} calls per action per round)"
        )
        for col in ("action", "calls", "CPU/call", "p50", "p99", "calls/s"):
            table.add_column(col, justify="left" if col == "action" else "right")
        for r in results:
            cpu = f"{r.cpu_ms_per_call:.2f} ms" if r.cpu_ms_per_call is not None else "n/a"
            table.add_row(
                r.action,
                str(r.calls),
                cpu,
                f"{r.p50_ms:.1f} ms",
                f"{r.p99_ms:.1f} ms",
                f"{r.calls_per_s:.0f}",
            )
        Console().print(table)
