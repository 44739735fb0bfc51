"""Smoke test of the bus on a real embedded nats-server."""

from __future__ import annotations

import asyncio

from events.bus import Bus, Delivery
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply

CONV = Conversation(channel="web", id="c.1")
ACTOR = Actor(id="u1", roles=("user",))


async def test_publish_tail_and_work(bus: Bus) -> None:
    env = Envelope.new("reply", Reply(text="hi"), conversation=CONV, actor=ACTOR)
    seq = await bus.publish(env)
    assert seq == await bus.publish(env)  # duplicate: same sequence, stored once
    got = [item async for item in bus.tail(from_seq=1, stop_at_end=True)]
    assert [s for s, _ in got] == [seq]
    assert got[0][1] == env

    seen: list[Envelope] = []
    done = asyncio.Event()

    async def handle(d: Delivery) -> None:
        assert d.envelope is not None
        seen.append(d.envelope)
        await d.ack()
        done.set()

    worker = await bus.work("management", handle)
    intent = Envelope.new("intent.management.ping", {}, conversation=CONV, actor=ACTOR)
    await bus.publish(intent)
    await asyncio.wait_for(done.wait(), 10)
    await worker.stop()
    assert seen == [intent]
