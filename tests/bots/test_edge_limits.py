"""Limits a hostile client cannot dodge: by client address, by credential, on new sessions and
on failed authentications, on every route, against a live gateway and a real nats-server."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from typing import Any

import httpx
import pytest

from bots.tracking import ObservedReply
from bots.web.clientaddr import address_key, client_ip, parse_networks
from bots.web.ratelimit import BoundedMemoryStorage, Rate, RateLimited, RateLimits
from bots.web.rest import RestChannel
from bots.web.websocket import CLOSE_TOO_MANY
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply

from .conftest import LiveServer, ScriptedDialogue, start_gateway
from .web_clients import close_of, guest_client, ws_session


def assert_429(r: httpx.Response, limit: str) -> None:
    """The one 429 of every route: the reason, which limit, and Retry-After."""
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["limit"] == limit, body
    assert body["detail"].startswith("too many ")
    assert int(r.headers["Retry-After"]) >= 1 and body["retry_after"] >= 1


async def test_new_sessions_are_limited_per_address(bus: Bus) -> None:
    """Minting fresh guests (fresh limit keys) is itself limited by address."""
    live = await start_gateway(bus, ScriptedDialogue(), session_rate_limit=3)
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            tokens = []
            for _ in range(3):
                r = await client.post("/api/session")
                assert r.status_code == 200
                tokens.append(r.json()["token"])
            assert_429(await client.post("/api/session"), "sessions")
            # renewing an existing session mints nothing: still allowed
            r = await client.post("/api/session", json={"token": tokens[0]})
            assert r.status_code == 200 and r.json()["renewed"] is True
    finally:
        await live.stop()


async def test_rotating_sessions_does_not_escape_the_address_limit(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), address_rate_limit=5, rate_limit=100)
    try:
        codes = []
        for i in range(2):  # a new guest each time: 1 session + 2 messages = 3 requests each
            async with guest_client(live.url) as guest:
                for j in range(2):
                    r = await guest.client.post(
                        "/webhooks/rest/webhook", json={"message": f"m{i}{j}"}
                    )
                    codes.append(r.status_code)
        assert codes == [200, 200, 200, 429]
        assert_429(r, "address")
    finally:
        await live.stop()


async def test_failed_authentications_close_the_address(bus: Bus) -> None:
    """After too many 401s an address gets 429s, even with a good token: keys cannot be
    brute-forced."""
    live = await start_gateway(bus, ScriptedDialogue(), auth_failure_limit=3)
    try:
        async with guest_client(live.url) as guest:
            for i in range(3):
                r = await guest.client.post(
                    "/webhooks/rest/webhook",
                    json={"message": "hi"},
                    headers={"Authorization": f"Bearer fds_forged{i}"},
                )
                assert r.status_code == 401
            assert_429(
                await guest.client.post("/webhooks/rest/webhook", json={"message": "hi"}),
                "auth_failures",
            )
            assert_429(await guest.client.get("/webhooks/rest/pending"), "auth_failures")
            code, reason, _ = await close_of(live.ws_url, guest.token)
            assert code == CLOSE_TOO_MANY
            assert reason == "too many failed authentications from this address; retry in 300 s"
    finally:
        await live.stop()


async def test_forwarded_for_is_not_believed_by_default(bus: Bus) -> None:
    """A client writing X-Forwarded-For gets no new address (no trusted proxy configured)."""
    live = await start_gateway(bus, ScriptedDialogue(), session_rate_limit=2)
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            for i in range(2):
                headers = {"X-Forwarded-For": f"203.0.113.{i}"}
                assert (await client.post("/api/session", headers=headers)).status_code == 200
            r = await client.post("/api/session", headers={"X-Forwarded-For": "203.0.113.9"})
            assert_429(r, "sessions")
    finally:
        await live.stop()


async def test_forwarded_for_behind_a_trusted_proxy(bus: Bus) -> None:
    """Behind a trusted proxy the client is the first untrusted hop from the right: what the
    client itself wrote further left changes nothing."""
    live = await start_gateway(
        bus, ScriptedDialogue(), session_rate_limit=2, trusted_proxies="127.0.0.1/32,10.0.0.0/8"
    )
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:

            async def mint(xff: str) -> httpx.Response:
                return await client.post("/api/session", headers={"X-Forwarded-For": xff})

            # one client (198.51.100.7) behind two proxies, forging the leftmost entries
            for forged in ("1.1.1.1", "2.2.2.2"):
                assert (await mint(f"{forged}, 198.51.100.7, 10.1.2.3")).status_code == 200
            assert_429(await mint("3.3.3.3, 198.51.100.7, 10.1.2.3"), "sessions")
            # another client behind the same proxies has its own limit
            assert (await mint("198.51.100.8, 10.1.2.3")).status_code == 200
    finally:
        await live.stop()


def test_client_address_rules() -> None:
    trusted = parse_networks(["10.0.0.0/8", "::1"])

    def scope(peer: str, xff: str | None = None) -> dict[str, Any]:
        headers = [(b"x-forwarded-for", xff.encode())] if xff else []
        return {"client": (peer, 1234), "headers": headers}

    assert str(client_ip(scope("192.0.2.1", "9.9.9.9"), trusted)) == "192.0.2.1"
    assert str(client_ip(scope("10.0.0.1", "9.9.9.9, 192.0.2.5"), trusted)) == "192.0.2.5"
    assert str(client_ip(scope("10.0.0.1", "192.0.2.5, 10.9.9.9"), trusted)) == "192.0.2.5"
    assert str(client_ip(scope("10.0.0.1", "garbage, 10.9.9.9"), trusted)) == "10.9.9.9"
    assert str(client_ip(scope("10.0.0.1"), trusted)) == "10.0.0.1"
    assert str(client_ip(scope("::1", "[2001:db8::1]:443"), trusted)) == "2001:db8::1"
    assert str(client_ip(scope("::ffff:192.0.2.1"), ())) == "192.0.2.1"
    # a whole IPv6 /64 is one client; IPv4 addresses are themselves
    a = client_ip(scope("2001:db8:1:2::1"), ())
    b = client_ip(scope("2001:db8:1:2:ffff::9"), ())
    assert address_key(a) == address_key(b) == "2001:db8:1:2::/64"
    assert address_key(client_ip(scope("192.0.2.1"), ())) == "192.0.2.1"
    with pytest.raises(ValueError, match="not an IP address"):
        parse_networks(["10.0.0.0/8", "proxy.example"])


async def test_every_route_answers_the_same_429(bus: Bus, echo_runner: object) -> None:
    """Webhook, pending, WebSocket, intents API, session and the services' doors share the
    address limit and its one 429 answer."""
    from bots.web.intents_api import intents_router
    from frontdoor.doors import add_service_doors

    from .conftest import SimpleTurn, make_settings

    settings = make_settings(address_rate_limit=2, rate_limit=1000)
    routes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/webhooks/rest/webhook", {"message": "hi"}),
        ("GET", "/webhooks/rest/pending", None),
        ("POST", "/api/intents/echo/ticket_create", {"subject": "x"}),
        ("POST", "/services/management/whoami", {}),
        ("POST", "/api/session", {}),
    ]
    for method, path, body in routes:
        from bots.web.app import create_gateway_app

        api = intents_router(bus, known_actions={"echo": {"ticket_create"}}, timeout=5.0)
        app = create_gateway_app(
            bus,
            ScriptedDialogue(),
            issuer=_issuer(),
            settings=settings,
            routers=[api],
            turn_factory=SimpleTurn,
        )
        add_service_doors(app, app.state.gateway, timeout=5.0)
        live = LiveServer(app)
        await live.start()
        try:
            token, _ = app.state.gateway.signer.issue()
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=live.url, headers=headers) as client:
                codes = []
                for _ in range(3):
                    r = await client.request(method, path, json=body)
                    codes.append(r.status_code)
                assert codes[-1] == 429, (path, codes)
                assert_429(r, "address")
            if path == "/api/session":  # the WebSocket too, on an address already over
                code, reason, _ = await close_of(live.ws_url, token)
                assert code == CLOSE_TOO_MANY and reason.startswith("too many requests")
        finally:
            await api.reply_waiter.stop()  # type: ignore[attr-defined]
            await live.stop()


def _issuer() -> Any:
    from tests.claims import TEST_ISSUER

    return TEST_ISSUER


async def test_websocket_messages_count_per_caller(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), rate_limit=2)
    try:
        async with guest_client(live.url) as guest, ws_session(live.ws_url, guest.token) as ws:
            await ws.recv()  # hello
            # the REST channel and the socket share the caller's budget
            assert (
                await guest.client.post("/webhooks/rest/webhook", json={"message": "a"})
            ).status_code == 200
            await ws.send(json.dumps({"type": "message", "text": "b", "client_id": "c1"}))
            await ws.send(json.dumps({"type": "message", "text": "c", "client_id": "c2"}))
            frames = []
            while not any(f.get("type") == "error" for f in frames):
                frames.append(json.loads(await ws.recv()))
            error = next(f for f in frames if f.get("type") == "error")
            assert error["code"] == "rate_limited" and error["client_id"] == "c2"
            assert error["retry_after"] >= 1
    finally:
        await live.stop()


async def test_limiter_memory_is_bounded_with_many_keys() -> None:
    """A flood of new keys keeps at most ``max_keys`` of them, and memory stops growing."""
    limits = RateLimits(BoundedMemoryStorage(max_keys=2_000))
    rate = Rate("address", 5, 60.0)
    tracemalloc.start()
    try:
        for i in range(4_000):
            await limits.hit(rate, f"198.51.{i // 256}.{i % 256}")
        first, _ = tracemalloc.get_traced_memory()
        for i in range(4_000, 40_000):
            await limits.hit(rate, f"key-{i}")
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(limits.storage) <= 2_000  # type: ignore[arg-type]
    # ten times the keys afterwards: memory about the same (keys are a little longer)
    assert second < first * 1.5, (first, second)
    # the newest keys are still limited as they should be
    for _ in range(4):
        await limits.hit(rate, "key-39999")
    with pytest.raises(RateLimited):
        await limits.hit(rate, "key-39999")


def _reply(conversation: str, n: int) -> ObservedReply:
    env = Envelope.new(
        "reply",
        Reply(text=f"r{n}"),
        conversation=Conversation(channel="rest", id=conversation),
        actor=Actor(id="system:test"),
        correlation_id=uuid.uuid4(),
    )
    return ObservedReply(n, env, env.payload_as(Reply))


async def test_rest_late_replies_are_bounded_and_expire() -> None:
    channel = RestChannel(pending_max=3, max_senders=100, pending_ttl=3600)
    for n in range(1_000):
        await channel.deliver(_reply(f"conv-{n % 500}", n))
    assert len(channel._pending) <= 100
    assert len(channel.take_pending("conv-499")) <= 3
    expiring = RestChannel(pending_max=3, pending_ttl=0.05)
    await expiring.deliver(_reply("c", 1))
    import asyncio

    await asyncio.sleep(0.1)
    assert expiring.take_pending("c") == []


async def test_websocket_refused_on_an_address_over_its_limit(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), address_rate_limit=1)
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            assert (await client.post("/api/session")).status_code == 200
        code, reason, _ = await close_of(live.ws_url)
        assert code == CLOSE_TOO_MANY
        assert reason == "too many requests from this address; retry in 60 s"
    finally:
        await live.stop()
