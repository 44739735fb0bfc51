"""Ordering: concurrent publishers, one ordered reader, resume after reconnect and restart."""

from __future__ import annotations

import asyncio
import uuid

from events.bus import Bus
from events.embedded import EmbeddedNats
from tests.conftest import TEST_LIMITS
from tests.events.helpers import nothing_more, reply_env, take

PUBLISHERS = 20
PER_PUBLISHER = 100


async def _publish_many(bus: Bus, tag: str) -> dict[uuid.UUID, int]:
    """20 concurrent publishers x 100 events; returns envelope id -> acked sequence."""
    acked: dict[uuid.UUID, int] = {}

    async def publisher(p: int) -> None:
        for i in range(PER_PUBLISHER):
            env = reply_env(f"{tag}.conv.{p}", text=f"{p}:{i}")
            acked[env.id] = await bus.publish(env)

    await asyncio.gather(*(publisher(p) for p in range(PUBLISHERS)))
    return acked


def _assert_in_stream_order(got: list, acked: dict[uuid.UUID, int]) -> None:
    seqs = [seq for seq, _ in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "not in stream order / repeated"
    assert {env.id: seq for seq, env in got} == acked, "not every event exactly once"


async def test_concurrent_publishers_one_ordered_reader(bus: Bus) -> None:
    start = await bus.last_sequence() + 1
    reader = bus.tail(from_seq=None)  # only new events
    first = asyncio.ensure_future(anext(reader))  # subscribe before anything is published
    await asyncio.sleep(0.2)
    acked = await _publish_many(bus, "order")
    total = PUBLISHERS * PER_PUBLISHER
    assert sorted(acked.values()) == list(range(start, start + total)), "gaps or duplicates"
    got = [await asyncio.wait_for(first, 30), *await take(reader, total - 1)]
    _assert_in_stream_order(got, acked)
    # per publisher, its own events keep their publish order
    for p in range(PUBLISHERS):
        texts = [e.payload["text"] for _, e in got if e.conversation.id == f"order.conv.{p}"]
        assert texts == [f"{p}:{i}" for i in range(PER_PUBLISHER)]
    await nothing_more(reader, 0.5)
    await reader.aclose()


async def test_resume_from_sequence_with_a_new_connection(nats_server: EmbeddedNats) -> None:
    bus1 = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    acked = await _publish_many(bus1, "resume")
    reader = bus1.tail(from_seq=1)
    head = await take(reader, 700)
    await reader.aclose()
    await bus1.close()

    bus2 = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    try:
        rest_reader = bus2.tail(from_seq=head[-1][0] + 1)
        rest = await take(rest_reader, len(acked) - len(head))
        await nothing_more(rest_reader, 0.5)
        await rest_reader.aclose()
    finally:
        await bus2.close()
    _assert_in_stream_order(head + rest, acked)


async def test_tail_survives_a_server_restart(nats_server: EmbeddedNats) -> None:
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS, publish_timeout=30)
    try:
        before = {}
        for i in range(50):
            env = reply_env("restart.a", text=str(i))
            before[env.id] = await bus.publish(env)
        reader = bus.tail(from_seq=1)
        got = await take(reader, 30)  # the reader is in the middle of the stream

        await nats_server.stop()  # same port and store dir on start
        await asyncio.sleep(0.5)
        await nats_server.start()

        after = {}
        for i in range(50):
            env = reply_env("restart.b", text=str(i))
            after[env.id] = await bus.publish(env)  # retried across the reconnect
        got += await take(reader, 70, timeout=60)
        await nothing_more(reader, 1.0)
        await reader.aclose()
    finally:
        await bus.close()
    _assert_in_stream_order(got, before | after)
    assert [s for s, _ in got] == list(range(1, 101)), "the restart lost or reordered events"


async def test_tail_resumes_after_restart_from_a_saved_sequence(nats_server: EmbeddedNats) -> None:
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    acked = {}
    for i in range(40):
        env = reply_env("saved", text=str(i))
        acked[env.id] = await bus.publish(env)
    reader = bus.tail(from_seq=1)
    head = await take(reader, 25)
    await reader.aclose()
    await bus.close()
    cursor = head[-1][0]

    await nats_server.stop()
    await nats_server.start()
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    try:
        rest = [item async for item in bus.tail(from_seq=cursor + 1, stop_at_end=True)]
    finally:
        await bus.close()
    _assert_in_stream_order(head + rest, acked)
