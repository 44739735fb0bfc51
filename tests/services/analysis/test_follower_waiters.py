"""The view follower's waiters: woken exactly when their sequence is applied, never lost."""

from __future__ import annotations

import asyncio

from backend_services.analysis.follower import ViewFollower
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import MessageReceived


def _event(i: int) -> Envelope:
    return Envelope.new(
        "message.received",
        MessageReceived(text=f"m{i}", channel_message_id=f"m{i}"),
        conversation=Conversation(channel="web", id="follower-test"),
        actor=Actor(id="u1"),
    )


async def test_waiters_wake_in_sequence_order_and_time_out_cleanly(bus: Bus) -> None:
    follower = ViewFollower(bus)
    follower.start()
    try:
        assert await follower.catch_up(5.0)  # empty or not, it is at the end now
        base = follower.views.last_seq
        woken: list[int] = []

        async def wait(seq: int) -> None:
            assert await follower.wait_for(seq, 10.0)
            assert follower.views.last_seq >= seq
            woken.append(seq)

        waiters = [asyncio.create_task(wait(base + k)) for k in (3, 1, 2)]
        await asyncio.sleep(0.05)
        assert woken == []
        for i in range(3):
            await bus.publish(_event(i))
        await asyncio.wait_for(asyncio.gather(*waiters), 10.0)
        assert sorted(woken) == [base + 1, base + 2, base + 3]

        # a sequence that never comes: False after the timeout, and no waiter left behind
        assert not await follower.wait_for(base + 1000, 0.2)
        assert follower._waiters == []

        # concurrent catch-ups (sharing "last sequence" requests) all see every earlier event
        await bus.publish(_event(3))
        results = await asyncio.gather(*(follower.catch_up(10.0) for _ in range(20)))
        assert all(results)
        assert follower.views.last_seq >= base + 4
    finally:
        await follower.stop()
