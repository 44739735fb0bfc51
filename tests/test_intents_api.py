"""The headless intents API against a real bus and a raw service worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from bots.web.app import create_gateway_app
from bots.web.intents_api import intents_router
from events.bus import Bus, Delivery
from events.envelope import SYSTEM_ACTOR
from events.payloads import Reply
from tests.bots.conftest import ScriptedDialogue, SimpleTurn, make_settings
from tests.claims import TEST_ISSUER, verifier_for

KNOWN = {"echo": {"say", "deny"}, "silent": {"wait"}}


async def _echo_worker(bus: Bus):
    """A raw worker of ``echo`` that answers with what the intent's *signed claim* says."""
    verifier = verifier_for("echo")

    async def handle(d: Delivery) -> None:
        assert d.envelope is not None
        action = d.envelope.type.rsplit(".", 1)[1]
        claims = verifier.verify(d.envelope.claim)
        conv = d.envelope.conversation
        assert claims.allows(conv.channel, conv.id)
        if action == "deny":
            reply = Reply(text="no", status="denied", service="echo", action=action)
        else:
            reply = Reply(
                text=str(d.envelope.payload.get("text", "")),
                service="echo",
                action=action,
                data={"actor": claims.actor.id, "roles": list(claims.actor.roles)},
            )
        await bus.publish(
            d.envelope.follow("reply", reply, actor=SYSTEM_ACTOR, id=uuid.uuid5(d.envelope.id, "r"))
        )
        await d.ack()

    return await bus.work("echo", handle)


async def _api_client(bus: Bus, *, allow_anonymous: bool) -> AsyncIterator[httpx.AsyncClient]:
    router = intents_router(bus, known_actions=KNOWN, allow_anonymous=allow_anonymous, timeout=1.0)
    app = create_gateway_app(
        bus,
        ScriptedDialogue(),
        issuer=TEST_ISSUER,
        settings=make_settings(rate_limit=1000),
        routers=[router],
        turn_factory=SimpleTurn,
    )
    worker = await _echo_worker(bus)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        session = (await c.post("/api/session")).json()
        c.headers["Authorization"] = f"Bearer {session['token']}"
        c.headers["X-Test-Sender"] = session["sender"]
        yield c
    await router.reply_waiter.stop()  # type: ignore[attr-defined]
    await worker.stop()


@pytest.fixture
async def client(bus: Bus) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the intents API with a guest session's token (anonymous access off)."""
    async for c in _api_client(bus, allow_anonymous=False):
        yield c


async def test_reply_comes_back_with_the_signed_actor(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/intents/echo/say", json={"text": "héllo"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reply"]["text"] == "héllo" and body["reply"]["status"] == "ok"
    sender = client.headers["X-Test-Sender"]
    assert body["reply"]["data"] == {"actor": f"guest:{sender}", "roles": ["guest"]}
    uuid.UUID(body["correlation_id"])
    for bad in ("Bearer fds_forged", "Bearer something", "Basic Zm9vOmJhcg=="):
        r = await client.post(
            "/api/intents/echo/say", json={"text": "x"}, headers={"Authorization": bad}
        )
        assert r.status_code == 401, bad
        assert r.headers["www-authenticate"] == "Bearer"


async def test_anonymous_callers_are_refused_unless_switched_on(bus: Bus) -> None:
    async for c in _api_client(bus, allow_anonymous=False):
        del c.headers["Authorization"]
        r = await c.post("/api/intents/echo/say", json={"text": "x"})
        assert r.status_code == 401 and "credential is required" in r.json()["detail"]
        # 401 before anything else: an unauthenticated caller learns nothing of the services
        assert (await c.post("/api/intents/nosuch/say", json={})).status_code == 401
    async for c in _api_client(bus, allow_anonymous=True):
        del c.headers["Authorization"]
        r = await c.post("/api/intents/echo/say", json={"text": "x"})
        assert r.status_code == 200
        assert r.json()["reply"]["data"] == {"actor": "guest:anonymous", "roles": ["guest"]}


async def test_many_concurrent_requests_each_get_their_own_reply(client: httpx.AsyncClient) -> None:
    texts = [f"msg {i}" for i in range(40)]
    responses = await asyncio.gather(
        *(client.post("/api/intents/echo/say", json={"text": t}) for t in texts)
    )
    assert [r.json()["reply"]["text"] for r in responses] == texts


async def test_statuses_and_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/intents/echo/deny", json={})
    assert r.status_code == 403 and r.json()["reply"]["status"] == "denied"
    r = await client.post("/api/intents/nosuch/say", json={})
    assert r.status_code == 404 and "Known services: echo, silent" in r.json()["detail"]
    r = await client.post("/api/intents/echo/nosuch", json={})
    assert r.status_code == 404 and "no action 'nosuch'" in r.json()["detail"]
    r = await client.post("/api/intents/Bad.Name/x", json={})
    assert r.status_code == 404
    r = await client.post("/api/intents/echo/say", content=b"{not json")
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    r = await client.post("/api/intents/echo/say", json=[1, 2])
    assert r.status_code == 422 and "JSON object" in r.json()["detail"]


async def test_no_reply_in_time_is_a_504_with_the_correlation_id(
    client: httpx.AsyncClient, bus: Bus
) -> None:
    r = await client.post("/api/intents/silent/wait", json={})
    assert r.status_code == 504
    body = r.json()
    assert body["correlation_id"] in body["detail"] and "silent" in body["detail"]
    info = await bus.js.stream_info("FD_INTENTS")
    assert info.state.messages == 1  # the intent is still queued for the service


async def test_every_string_is_cleaned_and_bad_text_or_deep_json_is_422(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/api/intents/echo/say", json={"text": "a\x00b\u202ec\u0065\u0301"})
    assert r.status_code == 200 and r.json()["reply"]["text"] == "abcé"
    raw = {"content-type": "application/json"}
    r = await client.post("/api/intents/echo/say", content='{"text": "a\\ud800b"}', headers=raw)
    assert r.status_code == 422 and "lone surrogate" in r.json()["detail"]
    r = await client.post("/api/intents/echo/say", content='{"\\udc00": 1}', headers=raw)
    assert r.status_code == 422 and "lone surrogate" in r.json()["detail"]
    deep = "[" * 30_000 + "]" * 30_000
    for content_type in ("application/json", "text/plain"):
        r = await client.post(
            "/api/intents/echo/say", content=deep, headers={"content-type": content_type}
        )
        assert r.status_code == 422, r.text[:200]
        assert "nested deeper than 32 levels" in r.json()["detail"]
