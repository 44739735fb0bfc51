"""deploy/nats/nats-server.conf on a real nats-server: every component can do its job with
its own user, and no more. The file is the rendering of ``events.compartments``; each refusal
below is the server's own "Permissions Violation" (or JetStream's error) for that user, next to
a control that the same user may do the neighbouring allowed thing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service
from events import subjects
from events.bus import Bus, Delivery
from events.compartments import COMPONENTS, SERVICES, inbox_prefix, render_deploy_config
from events.embedded import find_nats_server, free_port
from events.envelope import Actor, Conversation, Envelope
from events.errors import StreamsMissing
from events.micro import (
    MicroEndpoint,
    MicroResponse,
    ServiceClient,
    discover,
    start_micro_service,
)
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


class Probe:
    """A plain nats-py connection as one user that records the server's permission errors.

    The server answers a refused PUB or SUB with ``-ERR 'Permissions Violation ...'`` before
    the PONG of the following flush, so after ``flush()`` the verdict is known.
    """

    def __init__(self, nc: NatsClient, errors: list[str]) -> None:
        self.nc = nc
        self.errors = errors

    @classmethod
    async def open(cls, hostport: str, user: str) -> Probe:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            _url(hostport, user),
            inbox_prefix=inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
        )
        return cls(nc, errors)

    async def _refused(self, what: str) -> bool:
        await self.nc.flush(timeout=5)
        await asyncio.sleep(0.01)
        wanted = f"permissions violation for {what}".lower()  # nats-py lower-cases the error
        return any(wanted in e.lower() for e in self.errors)

    async def publish_refused(self, subject: str, data: bytes = b"{}") -> bool:
        """Publish ``subject``; True when the server refused it."""
        await self.nc.publish(subject, data)
        return await self._refused(f'Publish to "{subject}"')

    async def subscribe_refused(self, subject: str) -> bool:
        """Subscribe ``subject``; True when the server refused it."""
        sub = await self.nc.subscribe(subject)
        try:
            return await self._refused(f'Subscription to "{subject}"')
        finally:
            await sub.unsubscribe()

    async def close(self) -> None:
        await self.nc.close()


@pytest.fixture
async def probes(secured_nats: str):
    """One ``Probe`` per component (``probes["marketing"]``...)."""
    opened = {user: await Probe.open(secured_nats, user) for user in COMPONENTS}
    try:
        yield opened
    finally:
        for probe in opened.values():
            await probe.close()


@pytest.fixture
async def gateway_bus(secured_nats: str):
    """The gateway's bus (it creates the streams)."""
    bus = await Bus.connect(_url(secured_nats, "gateway"), limits=TEST_LIMITS)
    try:
        yield bus
    finally:
        await bus.close()


def test_the_deploy_config_is_the_rendering_of_the_compartments() -> None:
    assert CONF.read_text() == render_deploy_config(), (
        "deploy/nats/nats-server.conf differs from events/compartments.py: regenerate it with "
        "`frontdoor nats config -o deploy/nats/nats-server.conf`"
    )


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


async def test_a_service_cannot_create_its_consumer_with_another_services_filter(
    secured_nats: str, gateway_bus: Bus
) -> None:
    marketing = await Probe.open(secured_nats, "marketing")
    try:
        config = {"name": "svc_marketing", "durable_name": "svc_marketing"}
        config["ack_policy"] = "explicit"
        create = "$JS.API.CONSUMER.CREATE.FD_INTENTS.svc_marketing"

        async def ask(subject: str, filter_subject: str) -> dict:
            body = {"stream_name": "FD_INTENTS", "config": {**config}}
            body["config"]["filter_subject"] = filter_subject
            msg = await marketing.nc.request(subject, json.dumps(body).encode(), timeout=5)
            return json.loads(msg.data)

        # the allowed create subject names its own filter: JetStream refuses any other filter
        stolen = await ask(f"{create}.fd.intent.marketing.>", "fd.intent.management.>")
        assert stolen["error"]["err_code"] == 10131, stolen
        # and every other way to create it is refused by NATS
        assert await marketing.publish_refused(f"{create}.fd.intent.management.>")
        assert await marketing.publish_refused(create)
        assert await marketing.publish_refused(
            "$JS.API.CONSUMER.DURABLE.CREATE.FD_INTENTS.svc_marketing"
        )
        # control: its own consumer with its own filter
        own = await ask(f"{create}.fd.intent.marketing.>", "fd.intent.marketing.>")
        assert "error" not in own, own
    finally:
        await marketing.close()


async def test_each_component_subscribes_only_to_its_own_inbox(
    secured_nats: str, probes: dict[str, Probe]
) -> None:
    marketing = probes["marketing"]
    assert await marketing.subscribe_refused("_INBOX.>")
    assert await marketing.subscribe_refused("_INBOX.gateway.>")
    assert await marketing.subscribe_refused("_INBOX.management.abc")
    assert not await marketing.subscribe_refused("_INBOX.marketing.abc")
    for user, probe in probes.items():
        others = [u for u in COMPONENTS if u != user]
        assert await probe.subscribe_refused("_INBOX.>"), user
        assert await probe.subscribe_refused(f"_INBOX.{others[0]}.x"), user
        assert not await probe.subscribe_refused(f"{inbox_prefix(user)}.x"), user


async def _management_doors(hostport: str, calls: list[str]) -> tuple[Bus, object]:
    """A stand-in management micro service (its own user) answering three doors."""
    bus = await Bus.connect(_url(hostport, "management"), limits=TEST_LIMITS, ensure=False)

    def door(name: str) -> MicroEndpoint:
        async def handle(data: bytes, headers: dict[str, str]) -> MicroResponse:
            calls.append(name)
            return MicroResponse(json.dumps({"door": name}).encode())

        return MicroEndpoint(name=name, handler=handle)

    doors = ["ticket_get", "resolve_actor", "user_set_roles"]
    service = await start_micro_service(
        bus, "management", "1.0.0", "stand-in", [door(d) for d in doors]
    )
    return bus, service


async def test_request_reply_doors_are_called_only_by_who_needs_them(
    secured_nats: str, gateway_bus: Bus, probes: dict[str, Probe]
) -> None:
    calls: list[str] = []
    management, service = await _management_doors(secured_nats, calls)
    generative = await Bus.connect(
        _url(secured_nats, "generative"), limits=TEST_LIMITS, ensure=False
    )
    try:
        # the gateway calls any door, management's resolve_actor included (over its own inbox)
        raw = await gateway_bus.request("fd.svc.management.resolve_actor", b"{}", timeout=5)
        assert json.loads(raw) == {"door": "resolve_actor"}
        # generative may call ticket_get, and nothing else of management
        raw = await generative.request("fd.svc.management.ticket_get", b"{}", timeout=5)
        assert json.loads(raw) == {"door": "ticket_get"}
        gen = probes["generative"]
        assert await gen.publish_refused("fd.svc.management.resolve_actor")
        assert await gen.publish_refused("fd.svc.management.user_set_roles")
        assert await gen.publish_refused("fd.svc.marketing.lead_capture")
        # no other service may call resolve_actor (nor any other service's door)
        for user in ("management", "marketing", "analysis"):
            assert await probes[user].publish_refused("fd.svc.management.resolve_actor"), user
        assert await probes["marketing"].publish_refused("fd.svc.analysis.report")
        assert calls == ["resolve_actor", "ticket_get"]
    finally:
        await service.stop()  # type: ignore[attr-defined]
        await generative.close()
        await management.close()


async def test_a_service_serves_only_its_own_doors_and_srv_subjects(
    probes: dict[str, Probe],
) -> None:
    marketing = probes["marketing"]
    for refused in (
        "fd.svc.management.>",
        "fd.svc.>",
        "$SRV.>",
        "$SRV.PING.management",
        "$SRV.STATS.management.abc",
        "fd.event.>",
        "fd.intent.marketing.>",
    ):
        assert await marketing.subscribe_refused(refused), refused
    for allowed in (
        "fd.svc.marketing.campaign_list",
        "$SRV.PING",
        "$SRV.INFO.marketing",
        "$SRV.STATS.marketing.abc",
    ):
        assert not await marketing.subscribe_refused(allowed), allowed


#: (user, event subject, may publish it)
EVENT_RULES = [
    ("marketing", "fd.event.web.x.handoff.started", False),
    ("marketing", "fd.event.web.x.ticket.created", False),
    ("marketing", "fd.event.system.management.service.ready", False),
    ("marketing", "fd.event.web.x.message.received", False),
    ("marketing", "fd.event.web.x.intent.detected", False),
    ("marketing", "fd.event.web.x.user.roles_changed", False),
    ("analysis", "fd.event.web.x.ticket.created", False),
    ("analysis", "fd.event.web.x.campaign.created", False),
    ("generative", "fd.event.api.x.ticket.updated", False),
    ("management", "fd.event.web.x.lead.captured", False),
    ("management", "fd.event.system.marketing.service.ready", False),
    ("gateway", "fd.event.web.x.ticket.created", False),
    ("gateway", "fd.event.system.management.service.ready", False),
    ("cli", "fd.event.web.x.reply", False),
    ("marketing", "fd.event.web.x.campaign.created", True),
    ("marketing", "fd.event.slack.C1.campaign.announced", True),
    ("marketing", "fd.event.web.x.lead.captured", True),
    ("marketing", "fd.event.web.x.segment.created", True),
    ("marketing", "fd.event.web.x.reply", True),
    ("marketing", "fd.event.web.x.intent.failed", True),
    ("marketing", "fd.event.web.x.security.denied", True),
    ("marketing", "fd.event.system.marketing.service.ready", True),
    ("management", "fd.event.web.x.ticket.created", True),
    ("management", "fd.event.system.management.user.roles_changed", True),
    ("management", "fd.event.system.management.service.stopping", True),
    ("analysis", "fd.event.api.y.reply", True),
    ("generative", "fd.event.web.z.reply", True),
    ("gateway", "fd.event.web.x.message.received", True),
    ("gateway", "fd.event.web.x.handoff.started", True),
    ("gateway", "fd.event.slack.t.reply", True),
    ("cli", "fd.event.system.bench-1.bench.event", True),
]


async def test_services_publish_only_the_events_they_own(
    gateway_bus: Bus, probes: dict[str, Probe]
) -> None:
    for user, subject, allowed in EVENT_RULES:
        refused = await probes[user].publish_refused(subject)
        assert refused is not allowed, f"{user} {'may' if allowed else 'may not'} publish {subject}"
    # what was allowed is stored, and nothing else
    wanted = {subject for _, subject, allowed in EVENT_RULES if allowed}
    for _ in range(100):
        info = await gateway_bus.js.stream_info(subjects.EVENT_STREAM, subjects_filter=">")
        if info.state.messages >= len(wanted):
            break
        await asyncio.sleep(0.05)
    assert set(info.state.subjects or {}) == wanted


async def test_an_envelope_forged_under_an_owned_subject_is_never_read(
    gateway_bus: Bus, probes: dict[str, Probe]
) -> None:
    """Marketing may publish ``campaign.*``: the same subject carrying a ticket (for analysis to
    count) or another conversation's event is stored, but no reader ever takes it."""

    def event(type_: str, conv: str) -> Envelope:
        return Envelope.new(
            type_, {}, conversation=Conversation(channel="web", id=conv), actor=Actor(id="u")
        )

    owned = "fd.event.web.x.campaign.created"
    honest = event("campaign.created", "x")
    for envelope in (event("ticket.created", "x"), event("campaign.created", "other"), honest):
        await probes["marketing"].nc.request(owned, envelope.to_bytes(), timeout=5)
    read = [env.id async for _, env in gateway_bus.tail(stop_at_end=True)]
    assert read == [honest.id]


async def test_only_the_gateway_and_cli_publish_intents(
    gateway_bus: Bus, probes: dict[str, Probe]
) -> None:
    for user in SERVICES:
        for target in ("management", "marketing", user):
            assert await probes[user].publish_refused(f"fd.intent.{target}.anything"), user
    assert not await probes["gateway"].publish_refused("fd.intent.management.whoami")
    assert not await probes["cli"].publish_refused("fd.intent.marketing.campaign_list")
    for _ in range(100):
        info = await gateway_bus.js.stream_info(subjects.INTENT_STREAM, subjects_filter=">")
        if info.state.messages >= 2:
            break
        await asyncio.sleep(0.05)
    assert set(info.state.subjects or {}) == {
        "fd.intent.management.whoami",
        "fd.intent.marketing.campaign_list",
    }


async def test_only_the_gateway_creates_streams_and_services_say_they_are_missing(
    secured_nats: str,
) -> None:
    marketing = await Bus.connect(
        _url(secured_nats, "marketing"), limits=TEST_LIMITS, ensure=False, publish_timeout=3
    )
    probe = await Probe.open(secured_nats, "analysis")
    try:
        with pytest.raises(StreamsMissing) as missing:
            await marketing.require_streams(wait=0.5)
        assert "FD_INTENTS" in str(missing.value) and "FD_EVENTS" in str(missing.value)
        assert "gateway" in str(missing.value)
        for stream in (subjects.INTENT_STREAM, subjects.EVENT_STREAM):
            assert await probe.publish_refused(f"$JS.API.STREAM.CREATE.{stream}")
            assert await probe.publish_refused(f"$JS.API.STREAM.DELETE.{stream}")
        gateway = await Bus.connect(_url(secured_nats, "gateway"), limits=TEST_LIMITS)
        await gateway.close()
        await marketing.require_streams(wait=0)  # the gateway created them
    finally:
        await probe.close()
        await marketing.close()


async def test_marketing_does_not_read_the_event_bus(probes: dict[str, Probe]) -> None:
    assert await probes["marketing"].publish_refused("$JS.API.CONSUMER.CREATE.FD_EVENTS")
    assert not await probes["analysis"].publish_refused("$JS.API.CONSUMER.INFO.FD_EVENTS.x")


async def test_a_jetstream_consumer_cannot_deliver_events_into_a_door(
    secured_nats: str, gateway_bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader of the event bus may create a push consumer with any deliver subject (JetStream
    does not check it against the creator's permissions): a door never runs for such a
    delivery, only for real requests."""
    calls: list[str] = []
    management, service = await _management_doors(secured_nats, calls)
    analysis = await Bus.connect(_url(secured_nats, "analysis"), limits=TEST_LIMITS, ensure=False)
    try:
        forged = Envelope.new(
            "reply",
            {"text": "forged"},
            conversation=Conversation(channel="web", id="forged"),
            actor=Actor(id="admin", roles=("admin",)),
        )
        await analysis.publish(forged)
        body = {
            "stream_name": "FD_EVENTS",
            "config": {
                "deliver_subject": "fd.svc.management.user_set_roles",
                "deliver_group": "svc_management",  # the doors' queue group
                "deliver_policy": "all",
                "ack_policy": "none",
                "filter_subject": "fd.event.web.forged.reply",
            },
        }
        with caplog.at_level(logging.WARNING, logger="frontdoor.micro"):
            made = await analysis.nc.request(
                "$JS.API.CONSUMER.CREATE.FD_EVENTS", json.dumps(body).encode(), timeout=5
            )
            assert "error" not in json.loads(made.data)  # JetStream lets it deliver there...
            for _ in range(100):
                if "not a request" in caplog.text or calls:
                    break
                await asyncio.sleep(0.05)
        assert calls == []  # ...but the door did not run for it
        assert "dropped a message on fd.svc.management.user_set_roles" in caplog.text
        await gateway_bus.request("fd.svc.management.user_set_roles", b"{}", timeout=5)
        assert calls == ["user_set_roles"]  # control: a real request does
    finally:
        await service.stop()  # type: ignore[attr-defined]
        await analysis.close()
        await management.close()


async def test_services_keep_their_own_facilities(secured_nats: str, gateway_bus: Bus) -> None:
    """analysis: charts (object store) and replays; management: $SRV.STATS discovery;
    the gateway: the NLU models' object store."""
    analysis = await Bus.connect(_url(secured_nats, "analysis"), limits=TEST_LIMITS, ensure=False)
    management = await Bus.connect(
        _url(secured_nats, "management"), limits=TEST_LIMITS, ensure=False
    )
    marketing = await Bus.connect(_url(secured_nats, "marketing"), limits=TEST_LIMITS, ensure=False)
    svc = Service("marketing")

    @svc.handler("ping")
    async def ping(payload: Empty, ctx: HandlerContext) -> Pong:
        return Pong()

    runner = signed_runner(svc, marketing)
    await runner.start()
    try:
        charts = await analysis.object_store(subjects.CHARTS_BUCKET)
        await charts.put("c.png", b"\x89PNG")
        assert (await charts.get("c.png")).data == b"\x89PNG"
        seen = [env.type async for _, env in analysis.tail(stop_at_end=True)]
        assert "service.ready" in seen
        stats = await discover(management, "STATS")
        assert "marketing" in {s.get("name") for s in stats}
        models = await gateway_bus.object_store(subjects.MODELS_BUCKET)
        await models.put("m.tar.gz", b"model")
        assert (await models.get("m.tar.gz")).data == b"model"
    finally:
        await runner.stop()
        for bus in (marketing, management, analysis):
            await bus.close()


async def test_the_cli_user_runs_doctor_and_the_bus_benchmark(
    secured_nats: str, gateway_bus: Bus
) -> None:
    from frontdoor.bench_bus import run_bench
    from frontdoor.doctor import run_doctor

    url = _url(secured_nats, "cli")
    report = await run_doctor(url, shown_url="cli")
    by_name = {c.name: c for c in report.checks}
    assert by_name["nats"].ok and by_name["jetstream"].ok, report.checks
    assert by_name["stream FD_EVENTS"].ok and by_name["stream FD_INTENTS"].ok, report.checks
    result = await run_bench(events=200, window=50, requests=20, in_flight=(1, 4), nats_url=url)
    assert result.acked_publishes_per_s > 0
    assert result.nats_url == f"nats://cli:***@{secured_nats}"  # printed: never the password
    assert [lat.requests for lat in result.latency] == [20, 20]


async def test_the_gateway_follows_ticket_events_with_its_own_user(
    secured_nats: str, gateway_bus: Bus
) -> None:
    """Ticket notices: the gateway's durable follower on FD_EVENTS, its KV bucket, and the
    reply it publishes, all under the gateway's NATS user; management publishes the event."""
    from bots.ticket_updates import ChatNotices

    management = await Bus.connect(
        _url(secured_nats, "management"), limits=TEST_LIMITS, ensure=False
    )
    notices = ChatNotices(gateway_bus)
    await notices.start()
    try:
        requester = Conversation(channel="web", id="w-perm")
        created = Envelope.new(
            "ticket.created",
            {
                "ticket": 7,
                "subject": "VPN",
                "status": "open",
                "priority": "normal",
                "requester_email": "a@b.c",
                "channel": "web",
            },
            conversation=requester,
            actor=Actor(id="guest:w-perm", roles=("guest",)),
        )
        await management.publish(created)
        solved = Envelope.new(
            "ticket.status_changed",
            {
                "ticket": 7,
                "subject": "VPN",
                "status": "solved",
                "priority": "normal",
                "requester_email": "a@b.c",
                "old_status": "open",
                "new_status": "solved",
            },
            conversation=Conversation(channel="api", id="agent"),
            actor=Actor(id="user:agent", roles=("agent",)),
        )
        replies = gateway_bus.tail(
            subjects.events_filter(channel="web", conversation_id="w-perm", envelope_type="reply")
        )
        await management.publish(solved)
        _, reply = await asyncio.wait_for(anext(replies), 20)
        await replies.aclose()
        assert reply.payload_as(Reply).text == "Ticket #7 (VPN) is now solved."
    finally:
        await notices.stop()
        await management.close()


async def test_the_gateway_tells_users_about_their_handoffs_with_its_own_user(
    secured_nats: str, gateway_bus: Bus
) -> None:
    """Hand-off notices: the gateway's durable follower of the hand-off events and the reply it
    publishes, under the gateway's NATS user."""
    from bots.handoff import HANDOFF_STARTED, NOTIFIED_TEXT, HandoffStarted
    from bots.web.agent.board import HandoffBoard
    from bots.web.agent.notices import HandoffNotices

    notices = HandoffNotices(gateway_bus, HandoffBoard(gateway_bus))
    await notices.start()
    try:
        conversation = Conversation(channel="web", id="w-perm-handoff", bot="support")
        replies = gateway_bus.tail(
            subjects.events_filter(
                channel="web", conversation_id="w-perm-handoff", envelope_type="reply"
            )
        )
        await gateway_bus.publish(
            Envelope.new(
                HANDOFF_STARTED,
                HandoffStarted(bot="support", text="a human please"),
                conversation=conversation,
                actor=Actor(id="guest:w-perm-handoff", roles=("guest",)),
            )
        )
        _, reply = await asyncio.wait_for(anext(replies), 20)
        await replies.aclose()
        assert reply.payload_as(Reply).text == NOTIFIED_TEXT
    finally:
        await notices.stop()
