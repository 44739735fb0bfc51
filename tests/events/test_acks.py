"""Acknowledging intents: ``Delivery.ack`` does not wait for the server, and nothing is lost.

The runtime acks an intent only after the reply's publish was acknowledged. These tests check
that such acks empty the work queue, and that a lost ack (the intent comes back) still answers
the user exactly once, because the reply id is derived from the intent id.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service
from events import subjects
from events.bus import Bus, Delivery
from events.envelope import SYSTEM_ACTOR, Conversation, Envelope
from events.payloads import Reply
from tests.claims import signed, signed_runner
from tests.events.helpers import ACTOR, take


class Num(BaseModel):
    """Input and output of the echo handler."""

    n: int


def _echo_service() -> Service:
    svc = Service("ackecho", description="ack test")

    @svc.handler("echo")
    async def echo(payload: Num, ctx: HandlerContext) -> Num:
        return payload

    return svc


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_answered_intents_leave_the_work_queue(bus: Bus) -> None:
    runner = signed_runner(_echo_service(), bus, concurrency=8)
    await runner.start()
    try:
        conv = Conversation(channel="api", id="ack-queue")
        replies = bus.tail(subjects.events_filter(channel="api", conversation_id="ack-queue"))
        intents = [
            signed(Envelope.new("intent.ackecho.echo", {"n": n}, conversation=conv, actor=ACTOR))
            for n in range(40)
        ]
        for env in intents:
            await bus.publish(env)
        got = await take(replies, 40)
        assert {e.correlation_id for _, e in got} == {e.id for e in intents}

        async def queue_empty() -> bool:
            info = await bus.js.stream_info(subjects.INTENT_STREAM)
            consumer = await bus.js.consumer_info(
                subjects.INTENT_STREAM, subjects.service_consumer("ackecho")
            )
            return info.state.messages == 0 and consumer.num_ack_pending == 0

        await _eventually(queue_empty)
    finally:
        await runner.stop()


async def test_a_lost_ack_still_answers_exactly_once(bus: Bus) -> None:
    deliveries: collections.Counter[uuid.UUID] = collections.Counter()

    async def handle(d: Delivery) -> None:
        assert d.envelope is not None
        deliveries[d.envelope.id] += 1
        reply = d.envelope.follow(
            "reply",
            Reply(text="done"),
            actor=SYSTEM_ACTOR,
            id=uuid.uuid5(d.envelope.id, "reply"),
        )
        await bus.publish(reply)
        if d.num_delivered > 1:  # the first ack "got lost": never sent
            await d.ack()

    worker = await bus.work("ackecho", handle, concurrency=4)
    try:
        conv = Conversation(channel="api", id="ack-lost")
        env = Envelope.new("intent.ackecho.echo", {"n": 1}, conversation=conv, actor=ACTOR)
        await bus.publish(env)

        async def redelivered() -> bool:  # and acked, after its reply's publish returned
            info = await bus.js.stream_info(subjects.INTENT_STREAM)
            return deliveries[env.id] >= 2 and info.state.messages == 0

        await _eventually(redelivered)
        events = [
            e
            async for _, e in bus.tail(
                subjects.events_filter(channel="api", conversation_id="ack-lost"),
                stop_at_end=True,
            )
        ]
        assert [e.type for e in events] == ["reply"]  # redelivered, answered once
    finally:
        await worker.stop()
