"""Fault test: the nats-server restarts in the middle of a run of intents.

Every intent whose publish was acknowledged must be answered exactly once after the restart
(replies counted by correlation id on FD_EVENTS). Run through the real service runtime with a
trivial handler, and at the bus level with a raw worker that replies with ``uuid5(intent.id)``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid

import pytest
from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service
from events import subjects
from events.bus import Bus, Delivery
from events.embedded import EmbeddedNats
from events.envelope import SYSTEM_ACTOR, Conversation, Envelope
from events.errors import PublishTimeout
from events.payloads import Reply
from tests.claims import signed, signed_runner
from tests.conftest import TEST_LIMITS
from tests.events.helpers import ACTOR

TOTAL = 300


class Num(BaseModel):
    """Input and output of the echo handler."""

    n: int


def echo_service() -> Service:
    """A service with one trivial handler."""
    svc = Service("faulty", description="fault test")

    @svc.handler("echo")
    async def echo(payload: Num, ctx: HandlerContext) -> Num:
        await asyncio.sleep(0.001)
        return payload

    return svc


async def _raw_worker(bus: Bus):
    async def handle(d: Delivery) -> None:
        assert d.envelope is not None
        reply = d.envelope.follow(
            "reply",
            Reply(text=str(d.envelope.payload["n"])),
            actor=SYSTEM_ACTOR,
            id=uuid.uuid5(d.envelope.id, "reply"),
        )
        await bus.publish(reply)
        await d.ack()

    return await bus.work("faulty", handle, concurrency=8)


async def _run_with_restart(nats_server: EmbeddedNats, use_runtime: bool) -> None:
    publisher = await Bus.connect(nats_server.url, limits=TEST_LIMITS, publish_timeout=30)
    service_bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS, publish_timeout=30)
    runner = None
    worker = None
    if use_runtime:
        runner = signed_runner(echo_service(), service_bus, concurrency=8)
        await runner.start()
    else:
        worker = await _raw_worker(service_bus)

    acknowledged: set[uuid.UUID] = set()
    not_acknowledged = 0
    restarted = asyncio.Event()

    async def publish_all() -> None:
        nonlocal not_acknowledged
        for n in range(TOTAL):
            env = signed(
                Envelope.new(
                    subjects.intent_type("faulty", "echo"),
                    {"n": n},
                    conversation=Conversation(channel="api", id=f"fault-{n % 7}"),
                    actor=ACTOR,
                )
            )
            try:
                await publisher.publish(env)
            except PublishTimeout:
                not_acknowledged += 1
                continue
            acknowledged.add(env.correlation_id)
            await asyncio.sleep(0.002)

    async def restart_midway() -> None:
        while len(acknowledged) < TOTAL // 3:
            await asyncio.sleep(0.01)
        await nats_server.stop()
        await asyncio.sleep(0.3)
        await nats_server.start()
        restarted.set()

    try:
        await asyncio.wait_for(asyncio.gather(publish_all(), restart_midway()), 120)
        assert restarted.is_set()
        assert len(acknowledged) > TOTAL // 3, "the restart should not stop publishing for good"

        replies: collections.Counter[uuid.UUID] = collections.Counter()
        deadline = asyncio.get_running_loop().time() + 90
        reader = publisher.tail(subjects.events_filter(envelope_type="reply"), from_seq=1)
        try:
            while set(replies) < acknowledged:
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, f"unanswered: {len(acknowledged - set(replies))} intents"
                with contextlib.suppress(TimeoutError):
                    _, env = await asyncio.wait_for(anext(reader), left)
                    replies[env.correlation_id] += 1
                    assert env.payload_as(Reply).status == "ok"
            # Let any late redelivery answer a second time, if the system were wrong.
            with contextlib.suppress(TimeoutError):
                while True:
                    _, env = await asyncio.wait_for(anext(reader), TEST_LIMITS.ack_wait_seconds + 1)
                    replies[env.correlation_id] += 1
        finally:
            await reader.aclose()
    finally:
        if runner:
            await runner.stop()
        if worker:
            await worker.stop()
        await service_bus.close()
        await publisher.close()

    assert acknowledged <= set(replies)
    twice = {cid: n for cid, n in replies.items() if n != 1}
    assert not twice, f"answered more than once: {twice}"
    assert set(replies) - acknowledged == set() or not_acknowledged > 0


async def test_restart_mid_run_bus_level(nats_server: EmbeddedNats) -> None:
    await _run_with_restart(nats_server, use_runtime=False)


async def test_restart_mid_run_through_the_runtime(nats_server: EmbeddedNats) -> None:
    await _run_with_restart(nats_server, use_runtime=True)


async def test_while_nats_is_down_a_fail_fast_bus_gives_up_in_seconds(
    nats_server: EmbeddedNats,
) -> None:
    """The gateway's bus answers an outage with BusUnavailable (a 503) after a few seconds,
    not after the whole publish timeout."""
    import time

    from events.errors import BusUnavailable
    from tests.events.helpers import reply_env

    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS, publish_timeout=30)
    bus.unavailable_after = 1.0
    try:
        await nats_server.stop()
        started = time.monotonic()
        with pytest.raises(BusUnavailable, match="unreachable"):
            await bus.publish(reply_env("down"))
        assert time.monotonic() - started < 5.0
        await nats_server.start()
        assert await bus.publish(reply_env("up")) >= 1  # and it recovers by itself
    finally:
        await bus.close()
