"""deploy/nats/nats-server.conf on a real nats-server: every component can do its job with
its own user, and no more (a service cannot take another service's intents, the gateway none)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service
from events import subjects
from events.bus import Bus, Delivery
from events.embedded import find_nats_server, free_port
from events.envelope import Actor, Conversation, Envelope
from events.micro import ServiceClient
from events.payloads import Reply
from tests.claims import TEST_ISSUER, signed, signed_runner
from tests.conftest import TEST_LIMITS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "deploy" / "nats" / "nats-server.conf"
PASSWORDS = {
    f"FD_NATS_{user.upper()}_PASSWORD": f"{user}-secret"
    for user in re.findall(r"user:\s*(\w+)", CONF.read_text())
}


class Empty(BaseModel):
    """No input."""


class Pong(BaseModel):
    """The answer."""

    ok: bool = True


@pytest.fixture
async def secured_nats(tmp_path: Path):
    """The deploy config with a temp store and free ports."""
    port = free_port()
    conf = CONF.read_text()
    conf = conf.replace("store_dir: /data/jetstream", f"store_dir: {tmp_path / 'js'}")
    conf = re.sub(r"^port: \d+", f"port: {port}", conf, flags=re.M)
    conf = re.sub(r"^http_port: \d+", f"http_port: {free_port()}", conf, flags=re.M)
    path = tmp_path / "nats.conf"
    path.write_text(conf)
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        [find_nats_server(), "-c", str(path)],
        env={**os.environ, **PASSWORDS},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            assert proc.poll() is None, "nats-server refused deploy/nats/nats-server.conf"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("nats-server did not start with deploy/nats/nats-server.conf")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _url(hostport: str, user: str) -> str:
    return f"nats://{user}:{PASSWORDS[f'FD_NATS_{user.upper()}_PASSWORD']}@{hostport}"


async def test_each_component_works_with_its_own_user(secured_nats: str) -> None:
    gateway = await Bus.connect(_url(secured_nats, "gateway"), limits=TEST_LIMITS)
    service_bus = await Bus.connect(_url(secured_nats, "marketing"), limits=TEST_LIMITS)
    svc = Service("marketing")

    @svc.handler("ping")
    async def ping(payload: Empty, ctx: HandlerContext) -> Pong:
        return Pong()

    runner = signed_runner(svc, service_bus)
    await runner.start()
    try:
        intent = signed(
            Envelope.new(
                subjects.intent_type("marketing", "ping"),
                {},
                conversation=Conversation(channel="api", id="perm"),
                actor=Actor(id="site:u", roles=("user",)),
            )
        )
        replies = gateway.tail(subjects.events_filter(channel="api", envelope_type="reply"))
        await gateway.publish(intent)
        _, reply = await asyncio.wait_for(anext(replies), 20)
        await replies.aclose()
        assert reply.correlation_id == intent.id and reply.payload_as(Reply).status == "ok"
        # request/reply door and discovery work for the gateway too
        answer = await ServiceClient(gateway, TEST_ISSUER).call(
            "marketing", "ping", {}, Actor(id="site:u", roles=("user",)), conversation=("api", "p")
        )
        assert answer.status == "ok"
        # the gateway keeps conversation state in KV
        kv = await gateway.key_value(subjects.CONVERSATIONS_BUCKET)
        await kv.put("k", b"v")
        assert (await kv.get("k")).value == b"v"
        # ... and Slack's seen-set and followed threads (created with a TTL on first use)
        for bucket in (subjects.SLACK_SEEN_BUCKET, subjects.SLACK_THREADS_BUCKET):
            kv = await gateway.key_value(bucket, ttl=600)
            await kv.put("k", b"v")
            assert (await kv.get("k")).value == b"v", bucket
    finally:
        await runner.stop()
        await service_bus.close()
        await gateway.close()


async def _cannot_take(bus: Bus, service: str) -> None:
    got: list[Delivery] = []

    async def handle(d: Delivery) -> None:
        got.append(d)

    try:
        worker = await bus.work(service, handle)
    except Exception:
        return  # refused outright (consumer creation not allowed)
    await asyncio.sleep(2.0)
    await worker.stop()
    assert not got, f"took {service}'s intents"


async def test_no_component_can_take_another_services_intents(secured_nats: str) -> None:
    admin = await Bus.connect(_url(secured_nats, "management"), limits=TEST_LIMITS, ensure=False)
    # a refused JetStream request looks like a timeout: keep the retry budget short
    gateway = await Bus.connect(
        _url(secured_nats, "gateway"), limits=TEST_LIMITS, publish_timeout=3
    )
    marketing = await Bus.connect(
        _url(secured_nats, "marketing"), limits=TEST_LIMITS, publish_timeout=3
    )
    try:
        await admin.ensure_service_consumer("management")
        await gateway.publish(
            Envelope.new(
                subjects.intent_type("management", "whoami"),
                {},
                conversation=Conversation(channel="api", id="perm2"),
                actor=Actor(id="u", roles=("user",)),
            )
        )
        await _cannot_take(marketing, "management")
        await _cannot_take(gateway, "management")
        info = await admin.js.stream_info(subjects.INTENT_STREAM)
        assert info.state.messages == 1, "the intent must still be waiting for management"
    finally:
        for bus in (admin, gateway, marketing):
            await bus.close()
