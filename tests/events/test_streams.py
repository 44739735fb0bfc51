"""Dedup by envelope id, idempotent stream creation, conflicting configs are refused."""

from __future__ import annotations

import dataclasses

import pytest
from nats.js.api import RetentionPolicy

from events import subjects
from events.bus import Bus
from events.embedded import EmbeddedNats
from events.errors import StreamConfigConflict
from events.streams import describe_streams, stream_configs
from tests.conftest import TEST_LIMITS
from tests.events.helpers import reply_env


async def _messages(bus: Bus, stream: str) -> int:
    return int((await bus.js.stream_info(stream)).state.messages)


async def test_same_envelope_twice_is_stored_once(bus: Bus) -> None:
    env = reply_env("dedup")
    first = await bus.publish(env)
    again = await bus.publish(env)
    assert again == first
    fut = await bus.publish_async(env)
    ack = await fut
    assert ack.duplicate and ack.seq == first
    assert await _messages(bus, subjects.EVENT_STREAM) == 1
    other = reply_env("dedup")
    assert await bus.publish(other) == first + 1
    assert await _messages(bus, subjects.EVENT_STREAM) == 2


async def test_dedup_survives_a_server_restart(nats_server: EmbeddedNats) -> None:
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    env = reply_env("dedup-restart")
    seq = await bus.publish(env)
    await bus.close()
    await nats_server.stop()
    await nats_server.start()
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    try:
        assert await bus.publish(env) == seq
        assert await _messages(bus, subjects.EVENT_STREAM) == 1
    finally:
        await bus.close()


async def test_stream_creation_is_idempotent(bus: Bus) -> None:
    before = {c.name: await bus.js.stream_info(c.name) for c in stream_configs(TEST_LIMITS)}
    await bus.publish(reply_env("idem"))
    await bus.ensure_streams()
    await bus.ensure_service_consumer("management")
    await bus.ensure_service_consumer("management")
    for name, info in before.items():
        now = await bus.js.stream_info(name)
        assert now.config == info.config, name
        assert now.created == info.created, f"{name} was re-created"
    assert await _messages(bus, subjects.EVENT_STREAM) == 1
    report = await describe_streams(bus.js, TEST_LIMITS)
    assert all(line.startswith("ok") for line in report.values()), report


async def test_conflicting_stream_config_is_refused(nats_server: EmbeddedNats) -> None:
    raw = await Bus.connect(nats_server.url, ensure=False)
    try:
        events_cfg = next(c for c in stream_configs(TEST_LIMITS) if c.name == "FD_EVENTS")
        await raw.js.add_stream(
            dataclasses.replace(events_cfg, retention=RetentionPolicy.INTEREST, max_age=3600.0)
        )
    finally:
        await raw.close()
    with pytest.raises(StreamConfigConflict) as caught:
        await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    message = str(caught.value)
    assert "FD_EVENTS" in message and "retention" in message and "max_age" in message
    assert "existing=" in message and "wanted=" in message
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS, ensure=False)
    try:
        report = await describe_streams(bus.js, TEST_LIMITS)
    finally:
        await bus.close()
    assert report["FD_EVENTS"].startswith("CONFLICT") and "retention" in report["FD_EVENTS"]


async def test_conflicting_consumer_config_is_refused(bus: Bus) -> None:
    await bus.ensure_service_consumer("management")
    other = Bus(bus.nc, dataclasses.replace(TEST_LIMITS, max_deliver=9), 5.0)
    with pytest.raises(StreamConfigConflict, match="max_deliver"):
        await other.ensure_service_consumer("management")


async def test_unreachable_nats_is_a_clear_error_without_credentials() -> None:
    from events.embedded import free_port
    from events.errors import BusUnavailable

    url = f"nats://user:s3cret@127.0.0.1:{free_port()}"
    with pytest.raises(BusUnavailable) as caught:
        await Bus.connect(url, connect_timeout=1.0)
    assert "cannot reach NATS" in str(caught.value)
    assert "s3cret" not in str(caught.value)
