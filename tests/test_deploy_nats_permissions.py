"""deploy/nats/nats-server.conf (rendered from events/compartments.py) on a real nats-server:
every component can do its job with its own user, and no more. Each denial is proven: the
server refuses it (a permissions violation) and nothing of it arrives anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerConfig, StreamConfig
from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service
from events import subjects
from events.bus import Bus, Delivery
from events.compartments import components, inbox_prefix, password_env
from events.embedded import find_nats_server, free_port
from events.envelope import Actor, Conversation, Envelope
from events.errors import BusUnavailable
from events.micro import CLAIM_HEADER, ServiceClient, discover, micro_subject
from events.payloads import Reply
from tests.claims import TEST_ISSUER, signed, signed_runner
from tests.conftest import TEST_LIMITS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "deploy" / "nats" / "nats-server.conf"
PASSWORDS = {password_env(user): f"{user}-secret" for user in [*components(), "sys"]}
USER = Actor(id="site:u", roles=("user",))


class Empty(BaseModel):
    """No input."""


class Pong(BaseModel):
    """The answer."""

    ok: bool = True


@dataclass
class Secured:
    """The running deploy config: where it listens, its log."""

    hostport: str
    log: Path

    def violations(self) -> list[str]:
        """Every permissions violation the server logged."""
        return [
            line for line in self.log.read_text().splitlines() if " Violation - Subject" in line
        ]


@pytest.fixture
async def secured_nats(tmp_path: Path) -> AsyncIterator[Secured]:
    """The deploy config with a temp store and free ports."""
    port = free_port()
    conf = CONF.read_text()
    conf = conf.replace("store_dir: /data/jetstream", f"store_dir: {tmp_path / 'js'}")
    conf = re.sub(r"^port: \d+", f"port: {port}", conf, flags=re.M)
    conf = re.sub(r"^http_port: \d+", f"http_port: {free_port()}", conf, flags=re.M)
    path = tmp_path / "nats.conf"
    path.write_text(conf)
    log = tmp_path / "nats.log"
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        [find_nats_server(), "-c", str(path), "-l", str(log)],
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
        yield Secured(f"127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        proc.wait(10)


def _url(server: Secured, user: str) -> str:
    return f"nats://{user}:{PASSWORDS[password_env(user)]}@{server.hostport}"


async def _bus(server: Secured, user: str, **kwargs: object) -> Bus:
    return await Bus.connect(
        _url(server, user),
        limits=TEST_LIMITS,
        component=user,
        ensure=user == "gateway",
        **kwargs,  # type: ignore[arg-type]
    )


@dataclass
class Raw:
    """A plain nats-py client of one user, recording what the server refused."""

    nc: NatsClient
    errors: list[str] = field(default_factory=list)

    async def refused(self, kind: str, subject: str) -> bool:
        """Whether the server reported a ``kind`` (Publish/Subscription) violation on
        ``subject`` (waits up to 3 s for it)."""
        wanted = f'permissions violation for {kind} to "{subject}"'.lower()  # nats-py lowers it
        for _ in range(60):
            if any(wanted in e.lower() for e in self.errors):
                return True
            await asyncio.sleep(0.05)
        return False


async def _raw(server: Secured, user: str, *, inbox: str | None = None) -> Raw:
    raw = Raw(nc=NatsClient())

    async def on_error(exc: Exception) -> None:
        raw.errors.append(str(exc))

    raw.nc = await nats.connect(
        _url(server, user), inbox_prefix=inbox or inbox_prefix(user), error_cb=on_error
    )
    return raw


def _intent(service: str, action: str, conv: str, payload: dict | None = None) -> Envelope:
    return signed(
        Envelope.new(
            subjects.intent_type(service, action),
            payload or {},
            conversation=Conversation(channel="api", id=conv),
            actor=USER,
        )
    )


def _management(calls: list[str]) -> Service:
    """A stand-in for management with a public action and the internal ``resolve_actor``."""
    svc = Service("management")

    @svc.handler("ticket_get")
    async def ticket_get(payload: Empty, ctx: HandlerContext) -> Pong:
        calls.append("ticket_get")
        return Pong()

    @svc.handler("ticket_close")
    async def ticket_close(payload: Empty, ctx: HandlerContext) -> Pong:
        calls.append("ticket_close")
        return Pong()

    @svc.handler("resolve_actor", internal=True)
    async def resolve_actor(payload: Empty, ctx: HandlerContext) -> Pong:
        calls.append("resolve_actor")
        return Pong()

    return svc


async def _closing(*closers: Callable[[], Awaitable[object]]) -> None:
    for close in closers:
        with contextlib.suppress(Exception):  # best effort: the test's own failure matters
            await close()


# -- what works ---------------------------------------------------------------------------------


async def test_each_component_works_with_its_own_user(secured_nats: Secured) -> None:
    gateway = await _bus(secured_nats, "gateway")
    service_bus = await _bus(secured_nats, "marketing")
    svc = Service("marketing")

    @svc.handler("ping")
    async def ping(payload: Empty, ctx: HandlerContext) -> Pong:
        await ctx.emit("campaign.created", {"campaign": "x"})  # an event it owns
        return Pong()

    runner = signed_runner(svc, service_bus)
    await runner.start()
    try:
        intent = _intent("marketing", "ping", "perm")
        replies = gateway.tail(subjects.events_filter(channel="api", envelope_type="reply"))
        await gateway.publish(intent)
        _, reply = await asyncio.wait_for(anext(replies), 20)
        await replies.aclose()
        assert reply.correlation_id == intent.id and reply.payload_as(Reply).status == "ok"
        # request/reply door and discovery work for the gateway too
        answer = await ServiceClient(gateway, TEST_ISSUER).call(
            "marketing", "ping", {}, USER, conversation=("api", "p")
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
        # and NLU models (object store + pointer)
        models = await gateway.object_store(subjects.MODELS_BUCKET)
        await models.put("m", b"model")
        assert (await models.get("m")).data == b"model"
    finally:
        await _closing(runner.stop, service_bus.close, gateway.close)
    assert secured_nats.violations() == []


async def test_services_connect_without_streams_and_cannot_create_them(
    secured_nats: Secured,
) -> None:
    marketing = await _bus(secured_nats, "marketing")
    raw = await _raw(secured_nats, "marketing")
    try:
        assert sorted(await marketing.missing_streams()) == sorted(
            [subjects.INTENT_STREAM, subjects.EVENT_STREAM, subjects.DEAD_STREAM]
        )
        subject = f"$JS.API.STREAM.CREATE.{subjects.EVENT_STREAM}"
        config = StreamConfig(name=subjects.EVENT_STREAM, subjects=[subjects.ALL_EVENTS])
        await raw.nc.publish(subject, json.dumps(config.as_dict()).encode(), reply="_INBOX.x")
        assert await raw.refused("Publish", subject)
        assert subjects.EVENT_STREAM in await marketing.missing_streams()
        # the gateway creates them
        gateway = await _bus(secured_nats, "gateway")
        await gateway.close()
        assert await marketing.missing_streams() == []
    finally:
        await _closing(raw.nc.close, marketing.close)


async def test_analysis_keeps_its_charts_the_gateway_shows_them_and_management_discovers(
    secured_nats: Secured,
) -> None:
    gateway = await _bus(secured_nats, "gateway")
    analysis = await _bus(secured_nats, "analysis")
    management = await _bus(secured_nats, "management")
    runners = [
        signed_runner(Service("analysis"), analysis),
        signed_runner(_management([]), management),
    ]
    try:
        for runner in runners:
            await runner.start()
        charts = await analysis.object_store(subjects.CHARTS_BUCKET)
        await charts.put("chart.png", b"\x89PNG")
        assert (await charts.get("chart.png")).data == b"\x89PNG"
        # the gateway serves the chart images, and cannot write one
        shown = await gateway.object_store(subjects.CHARTS_BUCKET)
        assert (await shown.get("chart.png")).data == b"\x89PNG"
        raw = await _raw(secured_nats, "gateway")
        subject = "$O.fd_charts.C.forged"
        await raw.nc.publish(subject, b"not a chart")
        assert await raw.refused("Publish", subject)
        await raw.nc.close()
        # management's services_status asks $SRV.STATS: every running service answers
        names = {answer.get("name") for answer in await discover(management, "STATS")}
        assert {"analysis", "management"} <= names
        # ... and, starting, whether another instance of it runs (one SQLite, one process)
        assert [a["name"] for a in await discover(management, "PING", "management")] == [
            "management"
        ]
        # a service pings only its own instances
        raw = await _raw(secured_nats, "analysis")
        await raw.nc.publish("$SRV.PING.management", b"", reply=raw.nc.new_inbox())
        assert await raw.refused("Publish", "$SRV.PING.management")
        await raw.nc.close()
    finally:
        await _closing(*(r.stop for r in runners), analysis.close, management.close, gateway.close)
    expected = (
        'user:gateway" - Publish Violation - Subject "$O.fd_charts.C.forged"',
        'user:analysis" - Publish Violation - Subject "$SRV.PING.management"',
    )
    assert [v for v in secured_nats.violations() if not any(e in v for e in expected)] == []


# -- intents ------------------------------------------------------------------------------------


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


async def test_no_component_can_take_another_services_intents(secured_nats: Secured) -> None:
    # a refused JetStream request looks like a timeout: keep the retry budget short
    gateway = await _bus(secured_nats, "gateway", publish_timeout=3)
    admin = await _bus(secured_nats, "management")
    marketing = await _bus(secured_nats, "marketing", publish_timeout=3)
    try:
        await admin.ensure_service_consumer("management")
        await gateway.publish(_intent("management", "whoami", "perm2"))
        await _cannot_take(marketing, "management")
        await _cannot_take(gateway, "management")
        info = await admin.js.stream_info(subjects.INTENT_STREAM)
        assert info.state.messages == 1, "the intent must still be waiting for management"
    finally:
        await _closing(admin.close, gateway.close, marketing.close)


async def test_a_service_cannot_give_its_consumer_another_services_intents(
    secured_nats: Secured,
) -> None:
    gateway = await _bus(secured_nats, "gateway")
    raw = await _raw(secured_nats, "marketing")
    try:
        config = ConsumerConfig(
            name="svc_marketing",
            durable_name="svc_marketing",
            filter_subject="fd.intent.management.>",
            ack_policy="explicit",
        )
        body = json.dumps({"stream_name": subjects.INTENT_STREAM, "config": config.as_dict()})
        for subject in (
            f"$JS.API.CONSUMER.CREATE.{subjects.INTENT_STREAM}.svc_marketing.fd.intent.management.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{subjects.INTENT_STREAM}.svc_marketing",
            f"$JS.API.CONSUMER.CREATE.{subjects.INTENT_STREAM}.svc_marketing",
        ):
            await raw.nc.publish(subject, body.encode(), reply=raw.nc.new_inbox())
            assert await raw.refused("Publish", subject)
        info = await gateway.js.stream_info(subjects.INTENT_STREAM)
        assert info.state.consumer_count == 0
    finally:
        await _closing(raw.nc.close, gateway.close)


async def test_only_the_gateway_and_the_cli_publish_intents(secured_nats: Secured) -> None:
    gateway = await _bus(secured_nats, "gateway")
    cli = await _bus(secured_nats, "cli")
    services = {name: await _raw(secured_nats, name) for name in components()[1:-1]}
    try:
        await gateway.publish(_intent("marketing", "ping", "i1"))
        await cli.publish(_intent("marketing", "ping", "i2"))
        subject = subjects.intent_subject("management", "ticket_close")
        for raw in services.values():
            await raw.nc.publish(subject, _intent("management", "ticket_close", "i3").to_bytes())
        for name, raw in services.items():
            assert await raw.refused("Publish", subject), name
        info = await gateway.js.stream_info(subjects.INTENT_STREAM)
        assert info.state.messages == 2
    finally:
        await _closing(*(r.nc.close for r in services.values()), cli.close, gateway.close)


# -- events -------------------------------------------------------------------------------------


async def _stored(gateway: Bus) -> list[str]:
    """The subjects' types of everything on FD_EVENTS (as a reader sees them)."""
    return [env.type async for _, env in gateway.tail(subjects.ALL_EVENTS, stop_at_end=True)]


def _event(type_: str, channel: str, conv: str, payload: dict | None = None) -> Envelope:
    return Envelope.new(
        type_,
        payload or {},
        conversation=Conversation(channel=channel, id=conv),  # type: ignore[arg-type]
        actor=USER,
    )


async def test_each_service_publishes_only_the_events_it_owns(secured_nats: Secured) -> None:
    gateway = await _bus(secured_nats, "gateway")
    marketing = await _raw(secured_nats, "marketing")
    analysis = await _raw(secured_nats, "analysis")
    try:
        forged = [
            (marketing, _event("handoff.started", "web", "x")),
            (marketing, _event("ticket.created", "web", "x")),
            (marketing, _event("service.ready", "system", "management")),
            (marketing, _event("message.received", "web", "x")),
            (analysis, _event("ticket.created", "web", "x")),
        ]
        for raw, env in forged:
            await raw.nc.publish(subject_of(env), env.to_bytes())
        for raw, env in forged:
            assert await raw.refused("Publish", subject_of(env)), subject_of(env)
        owned = [
            (marketing, _event("campaign.created", "web", "x")),
            (marketing, _event("service.ready", "system", "marketing")),
            (marketing, _event("reply", "web", "x")),
            (analysis, _event("reply", "web", "y")),
        ]
        for raw, env in owned:
            await raw.nc.request(subject_of(env), env.to_bytes(), timeout=5)
        assert await _stored(gateway) == [env.type for _, env in owned]
    finally:
        await _closing(marketing.nc.close, analysis.nc.close, gateway.close)


def subject_of(env: Envelope) -> str:
    return subjects.event_subject(env.conversation.channel, env.conversation.id, env.type)


async def test_an_event_whose_envelope_is_not_its_subject_is_never_read(
    secured_nats: Secured,
) -> None:
    """Marketing may publish ``campaign.*``: an envelope of another type under such a subject
    (a forged ticket for analysis to count) is skipped by every reader."""
    gateway = await _bus(secured_nats, "gateway")
    marketing = await _raw(secured_nats, "marketing")
    try:
        fake = _event("ticket.created", "web", "x")
        elsewhere = _event("campaign.created", "web", "other")  # right type, other conversation
        await marketing.nc.request("fd.event.web.x.campaign.created", fake.to_bytes(), timeout=5)
        await marketing.nc.request(
            "fd.event.web.x.campaign.created", elsewhere.to_bytes(), timeout=5
        )
        honest = _event("campaign.created", "web", "x")
        await marketing.nc.request(subject_of(honest), honest.to_bytes(), timeout=5)
        assert [env.id async for _, env in gateway.tail(stop_at_end=True)] == [honest.id]
    finally:
        await _closing(marketing.nc.close, gateway.close)


# -- request/reply doors ------------------------------------------------------------------------


async def test_doors_generative_may_read_a_ticket_and_nothing_else(secured_nats: Secured) -> None:
    gateway = await _bus(secured_nats, "gateway")
    management = await _bus(secured_nats, "management")
    calls: list[str] = []
    runner = signed_runner(_management(calls), management)
    await runner.start()
    generative = await _raw(secured_nats, "generative")
    marketing = await _raw(secured_nats, "marketing")
    try:
        conv = ("api", "doors")
        claim = TEST_ISSUER.issue(USER, "generative", conversation=conv)  # delegated
        headers = {CLAIM_HEADER: claim}
        answer = await generative.nc.request(
            micro_subject("management", "ticket_get"), b"{}", timeout=10, headers=headers
        )
        assert Reply.model_validate_json(answer.data).status == "ok"
        assert calls == ["ticket_get"]
        for raw, action in (
            (generative, "ticket_close"),
            (generative, "resolve_actor"),
            (marketing, "resolve_actor"),
            (marketing, "ticket_get"),
        ):
            subject = micro_subject("management", action)
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await raw.nc.request(subject, b"{}", timeout=1, headers=headers)
            assert await raw.refused("Publish", subject), (action, raw)
        assert calls == ["ticket_get"], "a refused door ran its handler"
        # the gateway calls every door, resolve_actor included
        system = Actor(id="system:gateway", roles=("system",))
        reply = await ServiceClient(gateway, TEST_ISSUER).call(
            "management", "resolve_actor", {}, system, conversation=conv
        )
        assert reply.status == "ok" and calls[-1] == "resolve_actor"
    finally:
        await _closing(generative.nc.close, marketing.nc.close, runner.stop, management.close)
        await gateway.close()


async def test_a_push_consumer_cannot_smuggle_a_request_into_a_door(
    secured_nats: Secured,
) -> None:
    """NATS lets a consumer's creator name any deliver subject (nats-server#8274): marketing
    stores a request with a valid claim as its own event and points a push consumer at
    management's door. The door takes only what was sent to it."""
    gateway = await _bus(secured_nats, "gateway")
    management = await _bus(secured_nats, "management")
    calls: list[str] = []
    runner = signed_runner(_management(calls), management)
    await runner.start()
    marketing = await _raw(secured_nats, "marketing")
    try:
        request = _intent("management", "ticket_close", "smuggled")
        stored = "fd.event.api.smuggled.campaign.created"
        await marketing.nc.request(stored, request.to_bytes(), timeout=5)
        js = marketing.nc.jetstream()
        await js.add_consumer(
            subjects.EVENT_STREAM,
            ConsumerConfig(
                filter_subject=stored,
                deliver_subject=micro_subject("management", "ticket_close"),
                deliver_group="svc_management",
                ack_policy="none",
            ),
        )
        await asyncio.sleep(2.0)
        assert calls == [], "a message pushed by a consumer ran a handler"
    finally:
        await _closing(marketing.nc.close, runner.stop, management.close, gateway.close)


# -- inboxes and subscriptions ------------------------------------------------------------------


async def test_nobody_reads_another_components_inbox_or_doors(secured_nats: Secured) -> None:
    gateway = await _bus(secured_nats, "gateway")
    management = await _bus(secured_nats, "management")
    runner = signed_runner(_management([]), management)
    await runner.start()
    spy = await _raw(secured_nats, "marketing")
    seen: list[str] = []

    async def record(msg: object) -> None:
        seen.append(getattr(msg, "subject", "?"))

    try:
        for subject in (
            "_INBOX.>",
            f"{inbox_prefix('gateway')}.>",
            "fd.svc.management.>",
            "$SRV.>",
            "fd.intent.>",
        ):
            await spy.nc.subscribe(subject, cb=record)
            assert await spy.refused("Subscription", subject), subject
        # wrong inbox prefix: its own requests cannot get answers
        stranger = await _raw(secured_nats, "marketing", inbox="_INBOX")
        with pytest.raises(nats.errors.Error):
            await stranger.nc.request("$SRV.PING", b"", timeout=1)
        await stranger.nc.close()
        # a request from the gateway to management still works; nobody else sees its answer
        reply = await ServiceClient(gateway, TEST_ISSUER).call(
            "management", "ticket_get", {}, USER, conversation=("api", "inbox")
        )
        assert reply.status == "ok"
        await asyncio.sleep(0.5)
        assert seen == []
    finally:
        await _closing(spy.nc.close, runner.stop, management.close, gateway.close)


async def test_cli_attaches_for_doctor_dead_letters_and_models(secured_nats: Secured) -> None:
    from events.dead import list_dead
    from frontdoor.doctor import run_doctor

    gateway = await _bus(secured_nats, "gateway")
    try:
        report = await run_doctor(_url(secured_nats, "cli"), shown_url="cli")
        by_name = {c.name: c for c in report.checks}
        assert by_name["jetstream"].ok and by_name["stream FD_EVENTS"].ok, report.checks
        cli = await _bus(secured_nats, "cli")
        try:
            assert await list_dead(cli) == []
            models = await cli.object_store(subjects.MODELS_BUCKET)
            await models.put("m", b"model")
            pointer = await cli.key_value(subjects.MODELS_POINTER_BUCKET)
            await pointer.put("latest", b"m")
            with pytest.raises(BusUnavailable):
                await cli.request(micro_subject("management", "resolve_actor"), b"{}", 1)
        finally:
            await cli.close()
    finally:
        await gateway.close()
    violations = secured_nats.violations()
    assert len(violations) == 1 and "fd.svc.management.resolve_actor" in violations[0]
