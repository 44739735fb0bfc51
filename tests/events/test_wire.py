"""The hot-path helpers of ``events.wire``: ack-subject parsing, publish acks, queue reads."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg

from events import subjects
from events.bus import Bus
from events.embedded import EmbeddedNats
from events.wire import AckFields, PublishAcks, ack_fields, delivery_fields, next_msg
from tests.events.helpers import reply_env


def test_ack_fields_reads_both_subject_layouts() -> None:
    v1 = "$JS.ACK.FD_INTENTS.svc_x.2.17.5.1700000000000000000.3"
    v2 = "$JS.ACK.hub.ACCHASH.FD_INTENTS.svc_x.2.17.5.1700000000000000000.3.tok"
    assert ack_fields(v1) == AckFields(num_delivered=2, stream_seq=17, num_pending=3)
    assert ack_fields(v2) == AckFields(num_delivered=2, stream_seq=17, num_pending=3)


@pytest.mark.parametrize(
    "reply", [None, "", "_INBOX.abc.1", "$JS.ACK.too.short", "$JS.ACK.S.C.x.17.5.1.3"]
)
def test_ack_fields_rejects_other_subjects(reply: str | None) -> None:
    assert ack_fields(reply) is None


def test_delivery_fields_of_messages() -> None:
    def msg(reply: str) -> Msg:
        return Msg(_client=None, subject="fd.intent.x.y", reply=reply)  # type: ignore[arg-type]

    assert delivery_fields(msg("$JS.ACK.S.C.1.9.9.1700000000000000000.0")) == AckFields(1, 9, 0)
    assert delivery_fields(msg("_INBOX.abc")) is None
    assert delivery_fields(msg("")) is None


async def test_publish_acks_report_sequence_and_duplicate(bus: Bus) -> None:
    env = reply_env("wire-dup")
    data, subject = env.to_bytes(), subjects.event_subject("web", "wire-dup", "reply")
    headers = {"Nats-Msg-Id": str(env.id)}
    acks = PublishAcks(bus.nc)
    first = await acks.publish(subject, data, headers, timeout=5.0)
    again = await acks.publish(subject, data, headers, timeout=5.0)
    assert first.stream == subjects.EVENT_STREAM and not first.duplicate
    assert again.seq == first.seq and again.duplicate
    assert await bus.publish_checked(env) == (first.seq, True)


async def test_publish_acks_without_a_stream_raise_no_stream(bus: Bus) -> None:
    acks = PublishAcks(bus.nc)
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await acks.publish("not.a.stream.subject", b"{}", {}, timeout=5.0)


async def test_publish_acks_time_out_when_nothing_answers(nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        # Someone subscribes the subject but never answers: no 503, no ack.
        await nc.subscribe("silent.subject")
        acks = PublishAcks(nc)
        with pytest.raises(nats.errors.TimeoutError):
            await acks.publish("silent.subject", b"x", {}, timeout=0.3)
        assert not acks._waiting  # nothing left behind
    finally:
        await nc.close()


async def test_pipelined_publishes_resolve_in_order_and_clean_up(bus: Bus) -> None:
    acks = PublishAcks(bus.nc)
    envs = [reply_env("wire-pipe") for _ in range(20)]
    subject = subjects.event_subject("web", "wire-pipe", "reply")
    futures = [
        await acks.publish_nowait(subject, e.to_bytes(), {"Nats-Msg-Id": str(e.id)}, 5.0)
        for e in envs
    ]
    seqs = [(await f).seq for f in futures]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    again = await acks.publish_nowait(
        subject, envs[0].to_bytes(), {"Nats-Msg-Id": str(envs[0].id)}, 5.0
    )
    assert (await again).duplicate and (await again).seq == seqs[0]
    assert (await (await bus.publish_async(envs[1]))).seq == seqs[1]
    await asyncio.sleep(0)  # the done callbacks run on the next loop iteration
    assert not acks._waiting


async def test_pipelined_publish_errors_reach_the_future(nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        await nc.subscribe("silent.subject")
        acks = PublishAcks(nc)
        silent = await acks.publish_nowait("silent.subject", b"x", {}, timeout=0.3)
        no_stream = await acks.publish_nowait("not.a.stream.subject", b"x", {}, timeout=5.0)
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await no_stream
        with pytest.raises(nats.errors.TimeoutError):
            await silent
        await asyncio.sleep(0)
        assert not acks._waiting
    finally:
        await nc.close()


async def test_next_msg_reads_in_order_and_times_out(bus: Bus) -> None:
    sub = await bus.nc.subscribe("wire.queue")
    try:
        for n in range(5):
            await bus.nc.publish("wire.queue", str(n).encode())
        await bus.nc.flush()
        got = [(await next_msg(sub, 2.0)).data for _ in range(5)]
        assert got == [b"0", b"1", b"2", b"3", b"4"]
        assert sub.pending_bytes == 0
        with pytest.raises(nats.errors.TimeoutError):
            await next_msg(sub, 0.2)
    finally:
        await sub.unsubscribe()


async def test_publish_is_retried_across_a_server_restart(nats_server: EmbeddedNats) -> None:
    bus = await Bus.connect(nats_server.url, publish_timeout=30.0)
    try:
        first = await bus.publish(reply_env("wire-restart"))
        await nats_server.stop()
        restart = asyncio.create_task(_restart_later(nats_server))
        seq = await bus.publish(reply_env("wire-restart"))  # waits through the outage
        await restart
        assert seq == first + 1
    finally:
        await bus.close()


async def _restart_later(server: EmbeddedNats) -> None:
    await asyncio.sleep(1.0)
    await server.start()
