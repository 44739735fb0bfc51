"""Intents given up on are never silent: the user is answered, the intent is dead-lettered
(a handler that fails, one that hangs, a process that dies on it every time), and an operator
lists and replays dead letters with ``frontdoor dead``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service
from events import subjects
from events.bus import Bus, Delivery
from events.dead import ExhaustedIntents, list_dead
from events.embedded import EmbeddedNats
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply
from tests.claims import TEST_KEY, signed, signed_runner
from tests.conftest import TEST_LIMITS

ROOT = Path(__file__).resolve().parents[2]
USER = Actor(id="site:u1", name="Uma", roles=("user",))


class Work(BaseModel):
    """What to do."""

    mode: str


class Done(BaseModel):
    """Done."""

    mode: str


def flaky_service(calls: list[str]) -> Service:
    svc = Service("flaky")

    @svc.handler("work")
    async def work(payload: Work, ctx: HandlerContext) -> Done:
        calls.append(payload.mode)
        if payload.mode == "fail":
            raise RuntimeError("always fails")
        if payload.mode == "hang":
            await asyncio.sleep(3600)
        return Done(mode=payload.mode)

    return svc


def intent(mode: str) -> Envelope:
    return signed(
        Envelope.new(
            subjects.intent_type("flaky", "work"),
            {"mode": mode},
            conversation=Conversation(channel="web", id=f"dl-{uuid.uuid4().hex[:8]}"),
            actor=USER,
        )
    )


async def reply_of(bus: Bus, env: Envelope, timeout: float = 40.0) -> Reply:
    conv = env.conversation
    flt = subjects.events_filter(
        channel=conv.channel, conversation_id=conv.id, envelope_type="reply"
    )
    async with asyncio.timeout(timeout):
        async for _, got in bus.tail(flt, from_seq=1):
            if got.correlation_id == env.correlation_id:
                return got.payload_as(Reply)
    raise AssertionError("no reply")


async def test_a_failing_and_a_hanging_handler_are_answered_and_dead_lettered(
    nats_server: EmbeddedNats,
) -> None:
    limits = dataclasses.replace(TEST_LIMITS, handler_timeout_seconds=0.5)
    bus = await Bus.connect(nats_server.url, limits=limits)
    calls: list[str] = []
    runner = signed_runner(flaky_service(calls), bus)
    await runner.start()
    try:
        failing, hanging = intent("fail"), intent("hang")
        for env in (failing, hanging):
            await bus.publish(env)
        for env in (failing, hanging):
            reply = await reply_of(bus, env)
            assert reply.status == "error" and reply.reference and reply.reference in reply.text
        assert calls.count("fail") == calls.count("hang") == limits.max_deliver
        letters = {d.intent.id: d for d in await list_dead(bus)}
        assert letters[failing.id].reason == "handler_failed"
        assert letters[failing.id].error == "RuntimeError"
        assert letters[hanging.id].reason == "timeout"
        assert letters[hanging.id].deliveries == limits.max_deliver
        assert letters[hanging.id].intent.payload == {"mode": "hang"}
    finally:
        await runner.stop(grace=1)
        await bus.close()


async def test_an_intent_nobody_ever_answers_is_given_up_on_by_the_watcher(
    nats_server: EmbeddedNats,
) -> None:
    """A process that dies on the intent every time: JetStream stops redelivering it; the
    gateway's watcher answers the user, dead-letters it and clears the work queue."""
    limits = dataclasses.replace(TEST_LIMITS, ack_wait_seconds=1.0, max_deliver=2)
    bus = await Bus.connect(nats_server.url, limits=limits)
    watcher = ExhaustedIntents(bus)
    await watcher.start()
    deliveries: list[int] = []

    async def crashes(d: Delivery) -> None:  # takes it, never answers, never acks
        deliveries.append(d.num_delivered)

    worker = await bus.work("flaky", crashes)
    try:
        env = intent("crash")
        await bus.publish(env)
        reply = await reply_of(bus, env, timeout=30)
        assert reply.status == "error" and "something went wrong" in reply.text
        assert deliveries == [1, 2]
        [letter] = await list_dead(bus)
        assert letter.intent.id == env.id and letter.reason == "max_deliveries"
        info = await bus.js.stream_info(subjects.INTENT_STREAM)
        assert info.state.messages == 0  # no longer waits seven days in the work queue
        # A second watcher (another gateway) hearing the same advisory does nothing twice.
        assert await ExhaustedIntents(bus).handle(1, 2) is False
        assert len(await list_dead(bus)) == 1
    finally:
        await worker.stop(1)
        await watcher.stop()
        await bus.close()


async def test_a_dead_instances_intent_goes_to_another_in_seconds(
    nats_server: EmbeddedNats,
) -> None:
    limits = dataclasses.replace(TEST_LIMITS, ack_wait_seconds=2.0)
    first = await Bus.connect(nats_server.url, limits=limits)
    second = await Bus.connect(nats_server.url, limits=limits)
    taken = asyncio.Event()

    async def dies(d: Delivery) -> None:
        taken.set()
        await asyncio.sleep(3600)

    worker = await first.work("flaky", dies)
    calls: list[str] = []
    try:
        env = intent("ok")
        await first.publish(env)
        await asyncio.wait_for(taken.wait(), 10)
        await first.close()  # the instance is gone, its intent unacknowledged
        runner = signed_runner(flaky_service(calls), second)
        await runner.start()
        started = asyncio.get_running_loop().time()
        reply = await reply_of(second, env, timeout=20)
        waited = asyncio.get_running_loop().time() - started
        assert reply.status == "ok" and calls == ["ok"]
        assert waited < 2.0 + 3.0, waited  # about the ack wait, not the old 30 s
        await runner.stop(grace=1)
    finally:
        worker._task and worker._task.cancel()
        await second.close()


async def test_frontdoor_dead_lists_and_replays(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    bus = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    broken = {"on": True}
    svc = Service("flaky")
    calls: list[str] = []

    @svc.handler("work")
    async def work(payload: Work, ctx: HandlerContext) -> Done:
        calls.append(ctx.actor.id)
        if broken["on"]:
            raise RuntimeError("the database is down")
        return Done(mode=payload.mode)

    runner = signed_runner(svc, bus)
    await runner.start()
    try:
        env = intent("x")
        await bus.publish(env)
        assert (await reply_of(bus, env)).status == "error"
        cli_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("NATS", "FRONTDOOR_"))},
            "PYTHONPATH": str(ROOT),
            "NATS_URL": nats_server.url,
            "FRONTDOOR_DATA_DIR": str(tmp_path),
            "FRONTDOOR_CLAIMS_SIGNING_KEY": TEST_KEY.to_pem().decode(),
        }

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "frontdoor.cli", "dead", *args],
                cwd=ROOT,
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        listed = json.loads(await asyncio.to_thread(cli, "list", "--json"))
        assert [(d["service"], d["action"], d["actor"], d["error"]) for d in listed] == [
            ("flaky", "work", "site:u1", "RuntimeError")
        ]
        # The database is back; the operator replays the dead letter.
        broken["on"] = False
        calls.clear()
        out = await asyncio.to_thread(cli, "replay", str(listed[0]["seq"]))
        assert "1 replayed" in out
        flt = subjects.events_filter(
            channel="web", conversation_id=env.conversation.id, envelope_type="reply"
        )
        async with asyncio.timeout(30):
            while True:
                replies = [e async for _, e in bus.tail(flt, 1, stop_at_end=True)]
                if len(replies) >= 2:
                    break
                await asyncio.sleep(0.2)
        assert calls == ["site:u1"]  # it ran once more, as the user it came from
        later = replies[1].payload_as(Reply)
        assert later.status == "ok" and replies[1].correlation_id == env.correlation_id
        assert json.loads(await asyncio.to_thread(cli, "list", "--json")) == []
    finally:
        await runner.stop(grace=1)
        await bus.close()
