"""The REST webhook against a live gateway, a real nats-server and a real service."""

from __future__ import annotations

import uuid

import httpx

from bots.web.rest import WORKING_TEXT
from events.bus import Bus
from events.subjects import events_filter

from .conftest import LiveServer, ScriptedDialogue, start_gateway


def sender() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


async def test_contract_immediate_reply_shape(gateway: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.post("/webhooks/rest/webhook", json={"sender": "ana", "message": "hello"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == [{"recipient_id": "ana", "text": "echo: hello"}]


async def test_buttons_image_and_bot_choice(gateway: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.post(
            "/webhooks/rest/webhook",
            json={"sender": "bo", "message": "buttons", "metadata": {"bot": "support"}},
        )
        assert r.json() == [
            {
                "recipient_id": "bo",
                "text": "Pick one",
                "buttons": [{"title": "High", "payload": "high"}],
                "image": "https://x/y.png",
            }
        ]
        r = await client.post(
            "/webhooks/rest/webhook",
            json={"sender": "bo", "message": "count 1", "metadata": {"bot": "ops"}},
        )
        assert r.json()[0]["text"] == "ops 0"
        r = await client.post(
            "/webhooks/rest/webhook",
            json={"sender": "bo", "message": "hi", "metadata": {"bot": "nobody"}},
        )
        assert r.status_code == 422
        assert "unknown bot 'nobody'" in r.json()["detail"]


async def test_intent_goes_through_service_and_reply_comes_back(
    gateway: LiveServer, bus: Bus
) -> None:
    s = sender()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.post(
            "/webhooks/rest/webhook", json={"sender": s, "message": "ticket VPN drops"}
        )
    texts = [m["text"] for m in r.json()]
    assert texts[0] == "Opening a ticket…"
    assert len(texts) == 2 and texts[1].startswith("Ticket #") and "VPN drops" in texts[1]
    # Everything went over the bus: message.received, the bot's reply, the service's reply.
    kinds = [
        env.type
        async for _seq, env in bus.tail(
            events_filter(channel="rest", conversation_id=s), 1, stop_at_end=True
        )
    ]
    assert kinds == ["message.received", "reply", "reply"]


async def test_retry_with_same_message_id_is_processed_once(gateway: LiveServer, bus: Bus) -> None:
    s = sender()
    body = {"sender": s, "message": "ticket printer", "metadata": {"message_id": "m-1"}}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        first = await client.post("/webhooks/rest/webhook", json=body)
        second = await client.post("/webhooks/rest/webhook", json=body)
    assert len(first.json()) == 2
    assert second.json() == []
    assert second.headers["X-Frontdoor-Duplicate"] == "1"
    replies = [
        env
        async for _s, env in bus.tail(
            events_filter(channel="rest", conversation_id=s, envelope_type="reply"),
            1,
            stop_at_end=True,
        )
    ]
    assert len(replies) == 2


async def test_retry_after_gateway_restart_is_not_processed_again(
    bus: Bus, echo_runner: object
) -> None:
    """The in-memory seen-set is gone after a restart; the bus's duplicate window still guards."""
    s = sender()
    body = {"sender": s, "message": "count 1", "metadata": {"message_id": "same"}}
    dialogue = ScriptedDialogue()
    live = await start_gateway(bus, dialogue)
    async with httpx.AsyncClient(base_url=live.url) as client:
        assert len((await client.post("/webhooks/rest/webhook", json=body)).json()) == 1
    await live.stop()
    live = await start_gateway(bus, dialogue)
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            r = await client.post("/webhooks/rest/webhook", json=body)
        assert r.json() == []
        assert len(dialogue.turns) == 1
    finally:
        await live.stop()


async def test_slow_service_gets_working_note_then_late_reply_on_next_call(
    bus: Bus, echo_runner: object
) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), rest_turn_timeout=0.3)
    s = sender()
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            r = await client.post("/webhooks/rest/webhook", json={"sender": s, "message": "slow 1"})
            assert [m["text"] for m in r.json()] == [WORKING_TEXT]
            # the late answer is kept: the next call returns it first, then its own replies
            import asyncio

            for _ in range(50):
                await asyncio.sleep(0.1)
                if live.app.state.gateway.rest._pending.get(s):
                    break
            r = await client.post("/webhooks/rest/webhook", json={"sender": s, "message": "hello"})
            assert [m["text"] for m in r.json()] == ["Done after 1 s", "echo: hello"]
            # and never twice
            r = await client.get("/webhooks/rest/pending", params={"sender": s})
            assert r.json() == []
    finally:
        await live.stop()


async def test_pending_endpoint_returns_late_reply_once(bus: Bus, echo_runner: object) -> None:
    import asyncio

    live = await start_gateway(bus, ScriptedDialogue(), rest_turn_timeout=0.2)
    s = sender()
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            await client.post("/webhooks/rest/webhook", json={"sender": s, "message": "slow 0.6"})
            got: list[str] = []
            for _ in range(40):
                await asyncio.sleep(0.1)
                got += [
                    m["text"]
                    for m in (
                        await client.get("/webhooks/rest/pending", params={"sender": s})
                    ).json()
                ]
            assert got == ["Done after 0.6 s"]
    finally:
        await live.stop()


async def test_dialogue_failure_gives_polite_error_with_reference(gateway: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.post(
            "/webhooks/rest/webhook", json={"sender": sender(), "message": "boom"}
        )
    assert r.status_code == 200
    [reply] = r.json()
    assert "something went wrong" in reply["text"] and "reference" in reply["text"]


async def test_xss_passes_through_as_json_data(gateway: LiveServer) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.post("/webhooks/rest/webhook", json={"sender": sender(), "message": evil})
    assert r.headers["content-type"] == "application/json"
    assert r.json()[0]["text"] == f"echo: {evil}"
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_handoff_makes_bot_silent_and_forwards_messages(
    gateway: LiveServer, bus: Bus
) -> None:
    s = sender()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.post("/webhooks/rest/webhook", json={"sender": s, "message": "human"})
        assert [m["text"] for m in r.json()] == ["Connecting you to a human."]
        r = await client.post(
            "/webhooks/rest/webhook", json={"sender": s, "message": "are you there?"}
        )
        assert r.json() == []
    kinds = [
        (env.type, env.payload.get("text"))
        async for _s, env in bus.tail(
            events_filter(channel="rest", conversation_id=s), 1, stop_at_end=True
        )
        if env.type.startswith("handoff.")
    ]
    assert kinds == [("handoff.started", "human"), ("handoff.user_message", "are you there?")]
