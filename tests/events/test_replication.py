"""Replicas and limits: every stream, bucket and object store has explicit limits; on a
three-node cluster they are replicated three times and the bus survives losing a node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events import subjects
from events.bus import Bus
from events.cluster import LocalCluster
from events.errors import StreamConfigConflict
from events.streams import BUCKETS, OBJECT_STORES, BusLimits, choose_replicas
from tests.conftest import TEST_LIMITS
from tests.events.helpers import reply_env


def test_replicas_follow_the_cluster_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRONTDOOR_NATS_REPLICAS", raising=False)
    assert choose_replicas(None, 1) == 1
    assert choose_replicas(None, 2) == 1
    assert choose_replicas(None, 3) == 3
    assert choose_replicas(None, 5) == 3
    assert choose_replicas(5, 5) == 5
    monkeypatch.setenv("FRONTDOOR_NATS_REPLICAS", "1")
    assert choose_replicas(None, 3) == 1
    for bad in ("2", "three"):
        monkeypatch.setenv("FRONTDOOR_NATS_REPLICAS", bad)
        with pytest.raises(ValueError, match="1, 3 or 5"):
            choose_replicas(None, 3)


async def test_every_stream_bucket_and_object_store_has_limits(bus: Bus) -> None:
    for name in (subjects.INTENT_STREAM, subjects.EVENT_STREAM):
        config = (await bus.js.stream_info(name)).config
        assert config.max_bytes and config.max_bytes > 0, name
        assert config.max_msg_size and config.max_msg_size > 0, name
        assert config.max_age and config.max_age > 0, name
    for bucket, spec in BUCKETS.items():
        await bus.key_value(bucket)
        config = (await bus.js.stream_info(f"KV_{bucket}")).config
        assert config.max_bytes == spec.max_bytes, bucket
        assert config.num_replicas == 1
    conversations = (await bus.js.stream_info(f"KV_{subjects.CONVERSATIONS_BUCKET}")).config
    assert conversations.max_age == pytest.approx(30 * 24 * 3600)
    for store, spec in OBJECT_STORES.items():
        await bus.object_store(store)
        assert (await bus.js.stream_info(f"OBJ_{store}")).config.max_bytes == spec.max_bytes
    charts = (await bus.js.stream_info(f"OBJ_{subjects.CHARTS_BUCKET}")).config
    assert charts.max_age == pytest.approx(7 * 24 * 3600)


async def test_other_limits_or_replicas_are_a_conflict(bus: Bus) -> None:
    other = Bus(bus.nc, BusLimits(event_max_bytes=123 * 1024 * 1024), 5.0)
    with pytest.raises(StreamConfigConflict, match="max_bytes"):
        await other.ensure_streams()
    await bus.key_value(subjects.SLACK_SEEN_BUCKET, ttl=600)
    with pytest.raises(StreamConfigConflict, match="max_age"):
        await bus.key_value(subjects.SLACK_SEEN_BUCKET, ttl=60)
    three = Bus(bus.nc, BusLimits(replicas=3), 5.0)
    with pytest.raises(StreamConfigConflict, match="num_replicas"):
        await three.ensure_streams()


async def _eventually(read, timeout: float = 30.0) -> bytes:  # type: ignore[no-untyped-def]
    """``(await read()).value``, retried while the cluster elects new leaders."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return bytes((await read()).value)
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    nodes = LocalCluster(tmp_path / "cluster", 3)
    await nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.mark.timeout(120)
async def test_on_a_three_node_cluster_everything_has_three_replicas_and_survives_a_node(
    cluster: LocalCluster,
) -> None:
    bus = await Bus.connect(cluster.url, limits=TEST_LIMITS, publish_timeout=30)
    try:
        assert bus.cluster_size == 3 and bus.replicas == 3
        for name in (subjects.INTENT_STREAM, subjects.EVENT_STREAM):
            assert (await bus.js.stream_info(name)).config.num_replicas == 3
        kv = await bus.key_value(subjects.CURSORS_BUCKET)
        await kv.put("k", b"1")
        stored = (await bus.js.stream_info(f"KV_{subjects.CURSORS_BUCKET}")).config
        assert stored.num_replicas == 3
        before = await bus.publish(reply_env("c", "before"))
        # Lose the node that leads FD_EVENTS: the others elect a new leader and keep going.
        leader = (await bus.js.stream_info(subjects.EVENT_STREAM)).cluster.leader
        victim = next(n for n in cluster.nodes if n.name == leader)
        cluster.kill_node(victim)
        after = await asyncio.wait_for(bus.publish(reply_env("c", "after")), 30)
        assert after > before
        assert await _eventually(lambda: kv.get("k")) == b"1"  # once its group has a leader
        seen = [
            env.payload["text"]
            async for _, env in bus.tail(subjects.ALL_EVENTS, 1, stop_at_end=True)
        ]
        assert seen == ["before", "after"]
        cluster.start_node(victim)
        await cluster.wait_ready()
    finally:
        await bus.close()
