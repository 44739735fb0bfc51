"""The bus benchmark: acked publish throughput and intent -> handler -> reply round-trip latency.

- Throughput: ``--events`` envelopes published on FD_EVENTS with ``Bus.publish_async`` and a
  window of pending acknowledgements; the clock stops when the last ack has arrived.
- Latency: a trivial handler served by the real service runtime (``ServiceRunner``); a client
  publishes intents and waits for each reply on an ordered tail of FD_EVENTS, with 1 and with
  50 intents in flight (closed loop: a new intent as soon as one is answered).

Runs against an embedded nats-server it starts itself in a temporary directory, or ``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service, ServiceRunner
from events import subjects
from events.bus import Bus
from events.embedded import EmbeddedNats
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply

BENCH_SERVICE = "benchecho"
_ACTOR = Actor(id="bench", roles=("user",))


class _Ping(BaseModel):
    """Input and output of the trivial bench handler."""

    n: int = 0


def _bench_service() -> Service:
    svc = Service(BENCH_SERVICE, description="Benchmark echo")

    @svc.handler("echo", summary="Echo the number back")
    async def echo(payload: _Ping, ctx: HandlerContext) -> _Ping:
        return payload

    return svc


@dataclass
class LatencyResult:
    """Round-trip latencies (ms) at one level of concurrency."""

    in_flight: int
    requests: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    round_trips_per_s: float


@dataclass
class BenchResult:
    """Everything ``frontdoor bench bus`` measured."""

    nats_url: str
    embedded: bool
    events: int
    window: int
    publish_seconds: float
    acked_publishes_per_s: float
    latency: list[LatencyResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able dict."""
        return asdict(self)


async def measure_publish(bus: Bus, events: int, window: int) -> tuple[float, float]:
    """Publish ``events`` envelopes with at most ``window`` acks pending; return (s, per s)."""
    conv = Conversation(channel="system", id=f"bench-{uuid.uuid4().hex[:8]}")
    envelopes = [
        Envelope.new("bench.event", {"i": i}, conversation=conv, actor=_ACTOR)
        for i in range(events)
    ]
    pending: set[asyncio.Future[object]] = set()
    failures = 0
    start = time.perf_counter()
    for env in envelopes:
        if len(pending) >= window:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failures += sum(1 for f in done if f.exception() is not None)
        pending.add(await bus.publish_async(env))
    if pending:
        done, _ = await asyncio.wait(pending)
        failures += sum(1 for f in done if f.exception() is not None)
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} of {events} publishes were not acknowledged")
    return elapsed, events / elapsed


class _ReplyWaiter:
    """One ordered tail of the bench conversation's replies, resolving futures by correlation."""

    def __init__(self, bus: Bus, conv_id: str) -> None:
        self._bus = bus
        self._filter = subjects.events_filter(
            channel="api", conversation_id=conv_id, envelope_type="reply"
        )
        self._waiting: dict[uuid.UUID, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.2)  # let the ordered consumer be created before publishing

    async def _run(self) -> None:
        async for _, env in self._bus.tail(self._filter, from_seq=None):
            fut = self._waiting.pop(env.correlation_id, None)
            if fut is not None and not fut.done():
                if env.payload_as(Reply).status != "ok":
                    fut.set_exception(RuntimeError(f"bench handler failed: {env.payload}"))
                else:
                    fut.set_result(time.perf_counter())

    def expect(self, correlation_id: uuid.UUID) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        return fut

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def measure_latency(
    bus: Bus, waiter: _ReplyWaiter, conv_id: str, in_flight: int, requests: int
) -> LatencyResult:
    """Closed loop: ``in_flight`` clients, each sending its next intent when answered."""
    conv = Conversation(channel="api", id=conv_id)
    intent_type = subjects.intent_type(BENCH_SERVICE, "echo")
    samples: list[float] = []
    per_client = max(1, requests // in_flight)

    async def client() -> None:
        for n in range(per_client):
            env = Envelope.new(intent_type, {"n": n}, conversation=conv, actor=_ACTOR)
            answered = waiter.expect(env.correlation_id)
            sent = time.perf_counter()
            await bus.publish(env)
            got = await asyncio.wait_for(answered, 30)
            samples.append((got - sent) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(in_flight)))
    elapsed = time.perf_counter() - start
    samples.sort()
    return LatencyResult(
        in_flight=in_flight,
        requests=len(samples),
        p50_ms=round(statistics.median(samples), 3),
        p99_ms=round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        mean_ms=round(statistics.fmean(samples), 3),
        max_ms=round(samples[-1], 3),
        round_trips_per_s=round(len(samples) / elapsed, 1),
    )


async def run_bench(
    *,
    events: int = 20_000,
    window: int = 2_000,
    requests: int = 2_000,
    in_flight: tuple[int, ...] = (1, 50),
    nats_url: str | None = None,
) -> BenchResult:
    """Run the whole benchmark and return its numbers."""
    server: EmbeddedNats | None = None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if nats_url is None:
        tmp = tempfile.TemporaryDirectory(prefix="frontdoor-bench-")
        server = EmbeddedNats(Path(tmp.name) / "nats")
        nats_url = await server.start()
    bus = await Bus.connect(nats_url, name="frontdoor-bench")
    service_bus = await Bus.connect(nats_url, name="frontdoor-bench-service")
    runner = ServiceRunner(_bench_service(), service_bus, concurrency=64)
    waiter: _ReplyWaiter | None = None
    try:
        seconds, rate = await measure_publish(bus, events, window)
        result = BenchResult(
            nats_url=nats_url,
            embedded=server is not None,
            events=events,
            window=window,
            publish_seconds=round(seconds, 3),
            acked_publishes_per_s=round(rate, 1),
        )
        await runner.start()
        conv_id = f"bench-{uuid.uuid4().hex[:8]}"
        waiter = _ReplyWaiter(bus, conv_id)
        await waiter.start()
        await measure_latency(bus, waiter, conv_id, 1, 50)  # warm-up
        for level in in_flight:
            result.latency.append(await measure_latency(bus, waiter, conv_id, level, requests))
        return result
    finally:
        if waiter:
            await waiter.stop()
        await runner.stop()
        await service_bus.close()
        await bus.close()
        if server:
            await server.stop()
        if tmp:
            tmp.cleanup()
