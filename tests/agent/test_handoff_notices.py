"""What users hear about their hand-offs while the workspace is on comes from one durable
follower shared by the gateways (real nats-server, real gateways): a hand-off that started
while no gateway ran is answered when one starts, in order and once; with two gateways running
each notice is published by one of them; a hand-off that is over by the time its late event is
handled (someone said "nobody can be reached" while the workspace was off) is not announced."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from bots.handoff import (
    CLOSED_TEXT,
    HANDOFF_ENDED,
    HANDOFF_FILTER,
    HANDOFF_STARTED,
    NOTIFIED_TEXT,
    RATE_TEXT,
    UNAVAILABLE_TEXT,
    HandoffEnded,
    HandoffStarted,
    unavailable_envelopes,
)
from bots.web.app import Gateway
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from tests.agent.test_agent_api import NoDialogue, events_of, start_handoff, wait_for
from tests.bots.conftest import LiveServer, start_gateway

pytestmark = pytest.mark.timeout(90)


async def notices(bus: Bus, sender: str) -> list[Envelope]:
    """The hand-off notices the user of web conversation ``sender`` was sent, in bus order."""
    return [
        env
        for _, env in await events_of(bus, sender)
        if env.type == "reply" and str(env.payload.get("action", "")).startswith("handoff_")
    ]


def published(live: LiveServer) -> int:
    gateway: Gateway = live.app.state.gateway
    assert gateway.workspace is not None
    return gateway.workspace.notices.published


async def test_a_handoff_started_while_no_gateway_ran_is_answered_by_the_next_one(
    bus: Bus,
) -> None:
    first = await start_gateway(bus, NoDialogue())  # the workspace is on by default
    await first.stop()

    sender = "w-" + uuid.uuid4().hex
    started = await start_handoff(bus, sender)
    ended = started.follow(HANDOFF_ENDED, HandoffEnded(by="user:alice", outcome="closed"))
    await bus.publish(ended)
    await asyncio.sleep(0.5)
    assert await notices(bus, sender) == []

    again = await start_gateway(bus, NoDialogue())
    try:
        said = await wait_for(partial(_at_least, bus, sender, 3), timeout=15)
        assert [env.payload["text"] for env in said] == [NOTIFIED_TEXT, CLOSED_TEXT, RATE_TEXT]
        assert said[0].id == uuid.uuid5(started.id, "handoff:notified")
        await asyncio.sleep(1.0)
        assert len(await notices(bus, sender)) == 3
        assert published(again) == 3
    finally:
        await again.stop()


async def test_two_gateways_tell_the_user_once(bus: Bus) -> None:
    one = await start_gateway(bus, NoDialogue())
    two = await start_gateway(bus, NoDialogue())
    try:
        info = await bus.js.consumer_info(subjects.EVENT_STREAM, subjects.HANDOFF_NOTICES_CONSUMER)
        assert info.config.filter_subject == HANDOFF_FILTER
        assert info.config.max_ack_pending == 1  # in bus order across the replicas

        senders = ["w-" + uuid.uuid4().hex for _ in range(6)]
        for sender in senders:
            await start_handoff(bus, sender)
        for sender in senders:
            await wait_for(partial(_at_least, bus, sender, 1), timeout=15)
        await asyncio.sleep(1.0)
        for sender in senders:
            assert [e.payload["text"] for e in await notices(bus, sender)] == [NOTIFIED_TEXT]
        # each hand-off was handled by one replica (not published twice and deduplicated)
        assert published(one) + published(two) == len(senders)
    finally:
        await two.stop()
        await one.stop()


async def test_a_late_handoff_that_is_over_is_not_announced(bus: Bus) -> None:
    first = await start_gateway(bus, NoDialogue())  # the follower's position is kept from here
    await first.stop()

    # While the workspace was off (two hours ago), one hand-off was declined ("nobody can be
    # reached") and another one is still waiting.
    ago = datetime.now(UTC) - timedelta(hours=2)
    declined, waiting = ("w-" + uuid.uuid4().hex for _ in range(2))
    declined_started = _handoff(declined, ago)
    await bus.publish(declined_started)
    for answer in unavailable_envelopes(declined_started):
        await bus.publish(answer.model_copy(update={"occurred_at": ago}))
    await bus.publish(_handoff(waiting, ago))

    again = await start_gateway(bus, NoDialogue())
    try:
        said = await wait_for(partial(_at_least, bus, waiting, 1), timeout=15)
        assert [env.payload["text"] for env in said] == [NOTIFIED_TEXT]
        await asyncio.sleep(1.0)
        assert [e.payload["text"] for e in await notices(bus, declined)] == [UNAVAILABLE_TEXT]
        assert published(again) == 1
    finally:
        await again.stop()


def _handoff(sender: str, at: datetime) -> Envelope:
    started = Envelope.new(
        HANDOFF_STARTED,
        HandoffStarted(bot="support", text="a human please"),
        conversation=Conversation(channel="web", id=sender, bot="support"),
        actor=Actor(id=f"guest:{sender}", roles=("guest",)),
    )
    return started.model_copy(update={"occurred_at": at})


async def _at_least(bus: Bus, sender: str, count: int) -> list[Envelope] | None:
    found = await notices(bus, sender)
    return found if len(found) >= count else None
