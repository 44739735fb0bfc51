"""The bus benchmark: acked publish throughput and intent -> handler -> reply round-trip latency.

- Throughput: ``--events`` envelopes published on FD_EVENTS with ``Bus.publish_async`` and a
  window of pending acknowledgements; the clock stops when the last ack has arrived.
- Latency: a trivial handler served by the real service runtime (``ServiceRunner``); a client
  publishes intents (``Bus.publish``: waits for JetStream's ack) and waits for each reply on one
  shared ordered tail of FD_EVENTS (``Bus.tail``), with 1 and with 50 intents in flight (closed
  loop: a client sends its next intent as soon as its reply is observed). A sample is the time
  from just before the intent's publish to the moment the reply is read from the bus.
- CPU per round trip: the process time of this process (client and service together) and, for
  the embedded server on Linux, the nats-server's, divided by the round trips. Unlike the
  latency it hardly depends on what else the machine is running.

Runs against an embedded nats-server it starts itself in a temporary directory, or ``NATS_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service, ServiceRunner
from events import subjects
from events.bus import Bus
from events.claims import ClaimIssuer, ClaimVerifier, KeyRing, SigningKey
from events.compartments import BENCH_SERVICE
from events.embedded import EmbeddedNats
from events.envelope import Actor, Conversation, Envelope
from frontdoor.proc_cpu import process_cpu_seconds
from frontdoor.settings import redact_url

T = TypeVar("T")

# The benchmark's service, events and replies stay on channel ``system`` (no user sees them),
# where the ``cli`` NATS user may run them (``events.compartments``).
_ACTOR = Actor(id="user:bench", roles=("user",))
#: The bench signs its intents' claims with a key of its own (its service trusts only it).
_KEY = SigningKey.generate()
_ISSUER = ClaimIssuer(_KEY)


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
    process_cpu_us_per_round_trip: float
    nats_server_cpu_us_per_round_trip: float | None = None


@dataclass
class BenchResult:
    """Everything ``frontdoor bench bus`` measured."""

    #: where it ran, credentials redacted (the result is printed and saved)
    nats_url: str
    embedded: bool
    events: int
    window: int
    publish_seconds: float
    acked_publishes_per_s: float
    event_loop: str = "asyncio"
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
    pending: set[asyncio.Future[Any]] = set()
    room = asyncio.Event()
    failures = 0

    # O(1) per publish: each ack frees its slot from a done callback (``asyncio.wait`` on the
    # whole window for every publish would cost the driver O(window) each time).
    def settled(fut: asyncio.Future[Any]) -> None:
        nonlocal failures
        pending.discard(fut)
        if fut.cancelled() or fut.exception() is not None:
            failures += 1
        if len(pending) < window:
            room.set()

    start = time.perf_counter()
    for env in envelopes:
        while len(pending) >= window:
            room.clear()
            await room.wait()
        fut = await bus.publish_async(env)
        pending.add(fut)
        fut.add_done_callback(settled)
    if pending:  # (``settled`` runs before ``wait`` sees the last one done)
        await asyncio.wait(set(pending))
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} of {events} publishes were not acknowledged")
    return elapsed, events / elapsed


class ReplyWaiter(Generic[T]):
    """One ordered tail of replies matching ``filter_subject``, resolving the future of each
    correlation id with ``resolve(envelope)`` (an exception ``resolve`` raises fails it)."""

    def __init__(self, bus: Bus, filter_subject: str, resolve: Callable[[Envelope], T]) -> None:
        self._bus = bus
        self._filter = filter_subject
        self._resolve = resolve
        self._waiting: dict[uuid.UUID, asyncio.Future[T]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reading after the last stored event: every reply published from now on is
        read, with no race between creating the consumer and the first publish."""
        first = await self._bus.last_sequence() + 1
        self._task = asyncio.create_task(self._run(first))

    async def _run(self, first: int) -> None:
        waiting, resolve = self._waiting, self._resolve
        async for _, env in self._bus.tail(self._filter, from_seq=first):
            fut = waiting.pop(env.correlation_id, None)
            if fut is not None and not fut.done():
                try:
                    fut.set_result(resolve(env))
                except Exception as exc:
                    fut.set_exception(exc)

    def expect(self, correlation_id: uuid.UUID) -> asyncio.Future[T]:
        """The future the reply to ``correlation_id`` resolves (call before publishing)."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = fut
        return fut

    async def stop(self) -> None:
        """Stop reading."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _arrival_time(env: Envelope) -> float:
    """When a bench reply was read (``perf_counter``); a failed handler fails the round trip."""
    if env.payload.get("status") != "ok":
        raise RuntimeError(f"bench handler failed: {env.payload}")
    return time.perf_counter()


async def measure_latency(
    bus: Bus,
    waiter: ReplyWaiter[float],
    conv_id: str,
    in_flight: int,
    requests: int,
    server_pid: int | None = None,
) -> LatencyResult:
    """Closed loop: ``in_flight`` clients, each sending its next intent when answered."""
    conv = Conversation(channel="system", id=conv_id)
    intent_type = subjects.intent_type(BENCH_SERVICE, "echo")
    samples: list[float] = []
    per_client = max(1, requests // in_flight)
    clock = time.perf_counter

    async def client() -> None:
        for n in range(per_client):
            claim = _ISSUER.issue(_ACTOR, BENCH_SERVICE, conversation=(conv.channel, conv.id))
            env = Envelope.new(intent_type, {"n": n}, conversation=conv, actor=_ACTOR, claim=claim)
            answered = waiter.expect(env.correlation_id)
            sent = clock()
            await bus.publish(env)
            samples.append((await answered - sent) * 1000)

    server_cpu = process_cpu_seconds(server_pid) if server_pid else None
    cpu = time.process_time()
    start = clock()
    # One deadline for the level instead of a timer per request (the driver's CPU counts too).
    async with asyncio.timeout(30 + per_client * 0.5):
        await asyncio.gather(*(client() for _ in range(in_flight)))
    elapsed = clock() - start
    cpu = time.process_time() - cpu
    server_after = process_cpu_seconds(server_pid) if server_pid else None
    samples.sort()
    done = len(samples)
    return LatencyResult(
        in_flight=in_flight,
        requests=done,
        p50_ms=round(statistics.median(samples), 3),
        p99_ms=round(samples[min(done - 1, int(done * 0.99))], 3),
        mean_ms=round(statistics.fmean(samples), 3),
        max_ms=round(samples[-1], 3),
        round_trips_per_s=round(done / elapsed, 1),
        process_cpu_us_per_round_trip=round(cpu / done * 1e6, 1),
        nats_server_cpu_us_per_round_trip=(
            round((server_after - server_cpu) / done * 1e6, 1)
            if server_cpu is not None and server_after is not None
            else None
        ),
    )


def _loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


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
    runner = ServiceRunner(
        _bench_service(),
        service_bus,
        verifier=ClaimVerifier(KeyRing([_KEY.public]), BENCH_SERVICE),
        concurrency=64,
    )
    waiter: ReplyWaiter[float] | None = None
    try:
        seconds, rate = await measure_publish(bus, events, window)
        result = BenchResult(
            nats_url=redact_url(nats_url),
            embedded=server is not None,
            events=events,
            window=window,
            publish_seconds=round(seconds, 3),
            acked_publishes_per_s=round(rate, 1),
            event_loop=_loop_name(),
        )
        await runner.start()
        conv_id = f"bench-{uuid.uuid4().hex[:8]}"
        waiter = ReplyWaiter(
            bus,
            subjects.events_filter(
                channel="system", conversation_id=conv_id, envelope_type="reply"
            ),
            _arrival_time,
        )
        await waiter.start()
        await measure_latency(bus, waiter, conv_id, 1, 50)  # warm-up
        pid = server.pid if server else None
        for level in in_flight:
            result.latency.append(
                await measure_latency(bus, waiter, conv_id, level, requests, server_pid=pid)
            )
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
