"""The service work queue: instances share one durable consumer; slots are honoured."""

from __future__ import annotations

import asyncio
import collections
import uuid

from events.bus import Bus, Delivery
from events.embedded import EmbeddedNats
from events.envelope import Conversation, Envelope
from tests.conftest import TEST_LIMITS
from tests.events.helpers import ACTOR

CONV = Conversation(channel="api", id="wq")


def intent(n: int) -> Envelope:
    """A numbered intent for the ``management`` service."""
    return Envelope.new("intent.management.ping", {"n": n}, conversation=CONV, actor=ACTOR)


async def test_two_instances_share_the_intents(nats_server: EmbeddedNats) -> None:
    total = 300
    handled: collections.Counter[uuid.UUID] = collections.Counter()
    by_instance: collections.Counter[str] = collections.Counter()
    done = asyncio.Event()

    def handler_for(name: str):
        async def handle(d: Delivery) -> None:
            assert d.envelope is not None
            await asyncio.sleep(0.002)  # a little work, so both instances get a share
            handled[d.envelope.id] += 1
            by_instance[name] += 1
            await d.ack()
            if sum(handled.values()) >= total:
                done.set()

        return handle

    a = await Bus.connect(nats_server.url, limits=TEST_LIMITS, name="a")
    b = await Bus.connect(nats_server.url, limits=TEST_LIMITS, name="b")
    wa = await a.work("management", handler_for("a"), concurrency=4)
    wb = await b.work("management", handler_for("b"), concurrency=4)
    sent = [intent(i) for i in range(total)]
    try:
        await asyncio.gather(*(a.publish(env) for env in sent))
        await asyncio.wait_for(done.wait(), 60)
        await asyncio.sleep(0.5)  # any duplicate delivery would show up now
    finally:
        await wa.stop()
        await wb.stop()
        await a.close()
        await b.close()
    assert set(handled) == {env.id for env in sent}
    assert max(handled.values()) == 1, "an intent was handled twice"
    assert by_instance["a"] > 0 and by_instance["b"] > 0, by_instance


async def test_concurrency_is_a_hard_bound(bus: Bus) -> None:
    limit = 3
    running = 0
    peak = 0
    count = 0
    done = asyncio.Event()

    async def handle(d: Delivery) -> None:
        nonlocal running, peak, count
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        await d.ack()
        count += 1
        if count == 60:
            done.set()

    for i in range(60):
        await bus.publish(intent(i))
    worker = await bus.work("management", handle, concurrency=limit)
    await asyncio.wait_for(done.wait(), 30)
    await worker.stop()
    assert peak == limit
    assert worker.handled == 60


async def test_nak_redelivers_and_last_delivery_is_flagged(bus: Bus) -> None:
    attempts: list[tuple[int, bool]] = []
    done = asyncio.Event()

    async def handle(d: Delivery) -> None:
        attempts.append((d.num_delivered, d.is_last_delivery))
        if d.is_last_delivery:
            await d.term()
            done.set()
        else:
            await d.nak(delay=0.05)

    worker = await bus.work("management", handle)
    await bus.publish(intent(1))
    await asyncio.wait_for(done.wait(), 30)
    await asyncio.sleep(0.3)
    await worker.stop()
    assert attempts == [(1, False), (2, False), (3, True)]  # TEST_LIMITS.max_deliver == 3


async def test_malformed_intent_is_delivered_with_its_error(bus: Bus) -> None:
    got: list[Delivery] = []
    done = asyncio.Event()

    async def handle(d: Delivery) -> None:
        got.append(d)
        await d.term()
        done.set()

    worker = await bus.work("management", handle)
    await bus.js.publish("fd.intent.management.ping", b"{not json", headers={"Nats-Msg-Id": "x1"})
    await asyncio.wait_for(done.wait(), 30)
    await worker.stop()
    assert got[0].envelope is None and got[0].error


async def test_work_continues_after_a_server_restart(nats_server: EmbeddedNats) -> None:
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS, publish_timeout=30)
    seen: set[int] = set()

    async def handle(d: Delivery) -> None:
        assert d.envelope is not None
        seen.add(d.envelope.payload["n"])
        await d.ack()

    worker = await bus.work("management", handle)
    try:
        await bus.publish(intent(0))
        for _ in range(100):
            if 0 in seen:
                break
            await asyncio.sleep(0.05)
        await nats_server.stop()
        await nats_server.start()
        await bus.publish(intent(1))
        for _ in range(300):
            if 1 in seen:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
        await bus.close()
    assert seen == {0, 1}
