"""The REST webhook against a live gateway, a real nats-server and a real service."""

from __future__ import annotations

import asyncio

import httpx

from bots.handoff import NOTIFIED_TEXT
from bots.web.rest import WORKING_TEXT
from events.bus import Bus
from events.subjects import events_filter

from .conftest import LiveServer, ScriptedDialogue, start_gateway
from .web_clients import guest_client


async def test_contract_immediate_reply_shape(gateway: LiveServer) -> None:
    async with guest_client(gateway.url) as guest:
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": "hello"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == [{"recipient_id": guest.sender, "text": "echo: hello"}]
        # Rasa clients send a sender: the session's own is accepted, and echoed back.
        same = await guest.client.post(
            "/webhooks/rest/webhook", json={"sender": guest.sender, "message": "again"}
        )
        assert same.json() == [{"recipient_id": guest.sender, "text": "echo: again"}]


async def test_buttons_image_and_bot_choice(gateway: LiveServer) -> None:
    async with guest_client(gateway.url) as guest:
        client = guest.client
        r = await client.post(
            "/webhooks/rest/webhook",
            json={"message": "buttons", "metadata": {"bot": "support"}},
        )
        assert r.json() == [
            {
                "recipient_id": guest.sender,
                "text": "Pick one",
                "buttons": [{"title": "High", "payload": "high"}],
                "image": "https://x/y.png",
            }
        ]
        r = await client.post(
            "/webhooks/rest/webhook",
            json={"message": "count 1", "metadata": {"bot": "ops"}},
        )
        assert r.json()[0]["text"] == "ops 0"
        r = await client.post(
            "/webhooks/rest/webhook",
            json={"message": "hi", "metadata": {"bot": "nobody"}},
        )
        assert r.status_code == 422
        assert "unknown bot 'nobody'" in r.json()["detail"]


async def test_intent_goes_through_service_and_reply_comes_back(
    gateway: LiveServer, bus: Bus
) -> None:
    async with guest_client(gateway.url) as guest:
        s = guest.sender
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": "ticket VPN drops"})
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
    body = {"message": "ticket printer", "metadata": {"message_id": "m-1"}}
    async with guest_client(gateway.url) as guest:
        s = guest.sender
        first = await guest.client.post("/webhooks/rest/webhook", json=body)
        second = await guest.client.post("/webhooks/rest/webhook", json=body)
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
    body = {"message": "count 1", "metadata": {"message_id": "same"}}
    dialogue = ScriptedDialogue()
    live = await start_gateway(bus, dialogue)
    async with guest_client(live.url) as guest:
        token = guest.token
        assert len((await guest.client.post("/webhooks/rest/webhook", json=body)).json()) == 1
    await live.stop()
    live = await start_gateway(bus, dialogue)
    try:
        async with httpx.AsyncClient(
            base_url=live.url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            r = await client.post("/webhooks/rest/webhook", json=body)
        assert r.json() == []
        assert len(dialogue.turns) == 1
    finally:
        await live.stop()


async def test_slow_service_gets_working_note_then_late_reply_on_next_call(
    bus: Bus, echo_runner: object
) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), rest_turn_timeout=0.3)
    try:
        async with guest_client(live.url) as guest:
            client, s = guest.client, guest.sender
            r = await client.post("/webhooks/rest/webhook", json={"message": "slow 1"})
            assert [m["text"] for m in r.json()] == [WORKING_TEXT]
            # the late answer is kept: the next call returns it first, then its own replies
            for _ in range(50):
                await asyncio.sleep(0.1)
                if live.app.state.gateway.rest._pending.get(s):
                    break
            r = await client.post("/webhooks/rest/webhook", json={"message": "hello"})
            assert [m["text"] for m in r.json()] == ["Done after 1 s", "echo: hello"]
            # and never twice
            r = await client.get("/webhooks/rest/pending")
            assert r.json() == []
    finally:
        await live.stop()


async def test_pending_endpoint_returns_late_reply_once(bus: Bus, echo_runner: object) -> None:
    # It polls ten times a second, with a stranger's 401s in between: limits out of its way.
    live = await start_gateway(
        bus, ScriptedDialogue(), rest_turn_timeout=0.2, rate_limit=1000, auth_failure_limit=1000
    )
    try:
        async with guest_client(live.url) as guest, guest_client(live.url) as other:
            client, s = guest.client, guest.sender
            await client.post("/webhooks/rest/webhook", json={"message": "slow 0.6"})
            got: list[str] = []
            for _ in range(40):
                await asyncio.sleep(0.1)
                # Another visitor asking for this sender's late replies gets nothing of them.
                stolen = await other.client.get("/webhooks/rest/pending", params={"sender": s})
                assert stolen.status_code == 403
                anonymous = await httpx.AsyncClient(base_url=live.url).get(
                    "/webhooks/rest/pending", params={"sender": s}
                )
                assert anonymous.status_code == 401
                got += [m["text"] for m in (await client.get("/webhooks/rest/pending")).json()]
            assert got == ["Done after 0.6 s"]
    finally:
        await live.stop()


async def test_dialogue_failure_gives_polite_error_with_reference(gateway: LiveServer) -> None:
    async with guest_client(gateway.url) as guest:
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": "boom"})
    assert r.status_code == 200
    [reply] = r.json()
    assert "something went wrong" in reply["text"] and "reference" in reply["text"]


async def test_xss_passes_through_as_json_data(gateway: LiveServer) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with guest_client(gateway.url) as guest:
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": evil})
    assert r.headers["content-type"] == "application/json"
    assert r.json()[0]["text"] == f"echo: {evil}"
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_handoff_makes_bot_silent_and_forwards_messages(
    gateway: LiveServer, bus: Bus
) -> None:
    async with guest_client(gateway.url) as guest:
        client, s = guest.client, guest.sender
        r = await client.post("/webhooks/rest/webhook", json={"message": "human"})
        said = [m["text"] for m in r.json()]
        r = await client.post("/webhooks/rest/webhook", json={"message": "are you there?"})
        said += [m["text"] for m in r.json()]
        # The agent workspace (on by default) tells the user a person will answer: in the
        # hand-off's own answer, after the bot's, or as a late reply; once, in bus order.
        for _ in range(50):
            if NOTIFIED_TEXT in said:
                break
            await asyncio.sleep(0.1)
            said += [m["text"] for m in (await client.get("/webhooks/rest/pending")).json()]
        # the bot says nothing to "are you there?": a person owns the conversation
        assert said == ["Connecting you to a human.", NOTIFIED_TEXT]
    kinds = [
        (env.type, env.payload.get("text"))
        async for _s, env in bus.tail(
            events_filter(channel="rest", conversation_id=s), 1, stop_at_end=True
        )
        if env.type.startswith("handoff.")
    ]
    assert kinds == [("handoff.started", "human"), ("handoff.user_message", "are you there?")]


async def test_no_or_a_bad_credential_is_refused_and_nothing_is_stored(
    gateway: LiveServer, bus: Bus
) -> None:
    before = await bus.last_sequence()
    body = {"sender": "user:alice", "message": "what are my roles?"}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        bare = await client.post("/webhooks/rest/webhook", json=body)
        assert bare.status_code == 401
        assert bare.headers["www-authenticate"] == "Bearer"
        assert "/api/session" in bare.json()["detail"]
        for token in ("forged", "fds_forged.token.x", "fdk_", "a.b.c"):
            r = await client.post(
                "/webhooks/rest/webhook", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code in (401, 503), (token, r.status_code)
            assert token not in r.text or token == "a.b.c"  # a credential is never echoed back
        pending = await client.get("/webhooks/rest/pending", params={"sender": "user:alice"})
        assert pending.status_code == 401
    assert await bus.last_sequence() == before  # nothing reached the bus


async def test_a_guest_cannot_speak_in_another_conversation_nor_as_anyone(
    gateway: LiveServer, bus: Bus
) -> None:
    async with guest_client(gateway.url) as guest:
        stolen = await guest.client.post(
            "/webhooks/rest/webhook", json={"sender": "user:alice", "message": "close #1"}
        )
        assert stolen.status_code == 403
        ok = await guest.client.post("/webhooks/rest/webhook", json={"message": "hello"})
        assert ok.status_code == 200
    received = [
        env
        async for _s, env in bus.tail(
            events_filter(channel="rest", envelope_type="message.received"), 1, stop_at_end=True
        )
    ]
    assert [(e.conversation.id, e.actor.id, e.actor.roles) for e in received] == [
        (guest.sender, f"guest:{guest.sender}", ("guest",))
    ]


async def test_a_retry_runs_a_turn_whose_message_was_stored_but_never_processed(
    gateway: LiveServer, bus: Bus
) -> None:
    """The gateway stored message.received and died before the dialogue ran: the client's
    retry with the same idempotency key runs the turn (it is not a duplicate: no outcome)."""
    from bots.turns import message_envelope_id
    from events.envelope import Actor, Conversation, Envelope
    from events.payloads import MessageReceived

    async with guest_client(gateway.url) as guest:
        conv = Conversation(channel="rest", id=guest.sender, bot="chatbot")
        stored = Envelope.new(
            "message.received",
            MessageReceived(text="hello again", channel_message_id="m-crash"),
            conversation=conv,
            actor=Actor(id=f"guest:{guest.sender}", roles=("guest",)),
            id=message_envelope_id("rest", guest.sender, "m-crash"),
        )
        await bus.publish(stored)  # what the crashed gateway left behind
        r = await guest.client.post(
            "/webhooks/rest/webhook",
            json={"message": "hello again"},
            headers={"Idempotency-Key": "m-crash"},
        )
        assert r.status_code == 200
        assert r.json() == [{"recipient_id": guest.sender, "text": "echo: hello again"}]
        assert "X-Frontdoor-Duplicate" not in r.headers
        # the same retry once more: now it is done
        again = await guest.client.post(
            "/webhooks/rest/webhook",
            json={"message": "hello again"},
            headers={"Idempotency-Key": "m-crash"},
        )
        assert again.json() == [] and again.headers["X-Frontdoor-Duplicate"] == "1"
