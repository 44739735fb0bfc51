"""The headless intents API against a real bus and a raw service worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from bots.web.intents_api import intents_router
from events.bus import Bus, Delivery
from events.envelope import SYSTEM_ACTOR, Actor
from events.payloads import Reply

KNOWN = {"echo": {"say", "deny"}, "silent": {"wait"}}


async def _echo_worker(bus: Bus):
    async def handle(d: Delivery) -> None:
        assert d.envelope is not None
        action = d.envelope.type.rsplit(".", 1)[1]
        if action == "deny":
            reply = Reply(text="no", status="denied", service="echo", action=action)
        else:
            reply = Reply(
                text=str(d.envelope.payload.get("text", "")),
                service="echo",
                action=action,
                data={"actor": d.envelope.actor.id, "roles": list(d.envelope.actor.roles)},
            )
        await bus.publish(
            d.envelope.follow("reply", reply, actor=SYSTEM_ACTOR, id=uuid.uuid5(d.envelope.id, "r"))
        )
        await d.ack()

    return await bus.work("echo", handle)


async def _resolver(request: Request) -> Actor:
    token = request.headers.get("authorization", "")
    if token == "Bearer good":
        return Actor(id="user:ada", roles=("agent",))
    if token:
        raise HTTPException(401, "Unknown or revoked API key.")
    return Actor(id="anonymous", roles=("user",))


@pytest.fixture
async def client(bus: Bus) -> AsyncIterator[httpx.AsyncClient]:
    router = intents_router(bus, actor_resolver=_resolver, known_actions=KNOWN, timeout=1.0)
    app = FastAPI()
    app.include_router(router)
    worker = await _echo_worker(bus)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c
    await router.reply_waiter.stop()  # type: ignore[attr-defined]
    await worker.stop()


async def test_reply_comes_back_with_the_resolved_actor(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/intents/echo/say", json={"text": "héllo"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reply"]["text"] == "héllo" and body["reply"]["status"] == "ok"
    assert body["reply"]["data"] == {"actor": "anonymous", "roles": ["user"]}
    uuid.UUID(body["correlation_id"])
    r = await client.post(
        "/api/intents/echo/say", json={"text": "x"}, headers={"Authorization": "Bearer good"}
    )
    assert r.json()["reply"]["data"] == {"actor": "user:ada", "roles": ["agent"]}
    r = await client.post(
        "/api/intents/echo/say", json={"text": "x"}, headers={"Authorization": "Bearer bad"}
    )
    assert r.status_code == 401


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
