"""Hostile inputs at the edge, against a live gateway and a real nats-server: WebSocket caps and
frames, text that is not clean, JSON nested too deep. Each is refused with a clear answer (an
error frame, a close with a reason, a 4xx) or cleaned before it is stored; none is a 5xx or a
silently dropped connection."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from bots.web.websocket import CLOSE_BAD_REQUEST, CLOSE_TOO_MANY
from events.bus import Bus
from events.subjects import events_filter

from .conftest import LiveServer, ScriptedDialogue, start_gateway
from .web_clients import close_of, guest_client, ws_session

DIRTY = "a\x00b\x1b[31mc\u202ed\u200be\tf\ng\u0065\u0301"
CLEAN = "ab[31mcde\tf\ngé"  # NUL, ESC, bidi override, zero-width gone; NFC


async def received_texts(bus: Bus, channel: str, conversation: str) -> list[dict[str, Any]]:
    """The ``message.received`` payloads of a conversation, as stored on the bus."""
    return [
        env.payload
        async for _seq, env in bus.tail(
            events_filter(channel=channel, conversation_id=conversation), 1, stop_at_end=True
        )
        if env.type == "message.received"
    ]


async def next_frame(ws: websockets.ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == kind:
            return dict(frame)


# -- WebSocket caps --------------------------------------------------------------------------


async def test_websocket_connections_are_capped_per_address(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), ws_max_connections_per_address=2)
    try:
        async with guest_client(live.url) as guest:
            async with ws_session(live.ws_url, guest.token) as a:
                await next_frame(a, "hello")
                async with ws_session(live.ws_url, guest.token) as b:
                    await next_frame(b, "hello")
                    code, reason, _ = await close_of(live.ws_url, guest.token)
                    assert code == CLOSE_TOO_MANY
                    assert reason == "too many connections from this address (at most 2)"
            # closed sockets free their place
            async with ws_session(live.ws_url, guest.token) as c:
                assert (await next_frame(c, "hello"))["sender"] == guest.sender
    finally:
        await live.stop()


async def test_websocket_connections_are_capped_in_all(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), ws_max_connections=1)
    try:
        async with guest_client(live.url) as guest:
            async with ws_session(live.ws_url, guest.token) as a:
                await next_frame(a, "hello")
                code, reason, _ = await close_of(live.ws_url, guest.token)
                assert code == CLOSE_TOO_MANY
                assert reason.startswith("too many connections to this server")
        for _ in range(100):  # the server sees the close a moment later
            if live.app.state.gateway.sockets.total == 0:
                break
            await asyncio.sleep(0.02)
        assert live.app.state.gateway.sockets.total == 0
    finally:
        await live.stop()


async def test_websocket_frames_are_limited_like_bodies(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), max_body_bytes=2048)
    try:
        assert live.server.config.ws_max_size == 2048
        async with guest_client(live.url) as guest:
            big = json.dumps({"type": "message", "text": "x" * 4000})
            code, _reason, _ = await close_of(live.ws_url, guest.token, big)
            assert code == 1009  # message too big
    finally:
        await live.stop()


async def test_bad_frames_get_an_error_frame_and_the_socket_stays(gateway: LiveServer) -> None:
    deep = '{"type": "message", "text": "hi", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    cases: list[tuple[str | bytes, str, str]] = [
        (b"\x00\x01binary", "bad_frame", "not binary"),
        ('{"type": "message", "text": "hi", "client_id": "\\ud800"}', "invalid", "surrogate"),
        ('{"type": "message", "text": "a\\udc00b"}', "invalid", "surrogate"),
        ('{"type": "message", "text": "hi", "bot": "\\ud83d"}', "invalid", "surrogate"),
        (deep, "invalid", "nested deeper than 32 levels"),
        ("[" * 40 + "]" * 40, "invalid", "nested deeper"),
        ("{not json", "bad_json", "JSON"),
    ]
    async with guest_client(gateway.url) as guest:
        async with ws_session(gateway.ws_url, guest.token) as ws:
            await next_frame(ws, "hello")
            for frame, code, words in cases:
                await ws.send(frame)
                error = await next_frame(ws, "error")
                assert error["code"] == code, (frame, error)
                assert words in error["detail"], (frame, error)
                assert error["client_id"] is None
            await ws.send(json.dumps({"type": "ping"}))
            assert (await next_frame(ws, "pong")) == {"type": "pong"}


async def test_bad_since_closes_with_a_reason(gateway: LiveServer) -> None:
    async with guest_client(gateway.url) as guest:
        for since in (str(2**64), str(2**63), "-1", "abc", "1e3", "٣"):
            code, reason, _ = await close_of(f"{gateway.ws_url}?since={since}", guest.token)
            assert code == CLOSE_BAD_REQUEST, since
            assert reason.startswith("since must be a whole number from 0 to"), since
        async with ws_session(gateway.ws_url, guest.token, since=5) as ws:
            assert (await next_frame(ws, "hello"))["since"] == 5


async def test_binary_auth_frame_is_refused_with_a_reason(gateway: LiveServer) -> None:
    async with websockets.connect(gateway.ws_url) as ws:
        await ws.send(b'{"type": "auth"}')
        try:
            await ws.recv()
        except websockets.ConnectionClosed:
            pass
    assert ws.close_code == 4401 and "binary" in (ws.close_reason or "")


# -- text at the edge --------------------------------------------------------------------------


async def test_rest_text_is_cleaned_before_it_is_stored(gateway: LiveServer, bus: Bus) -> None:
    async with guest_client(gateway.url) as guest:
        body = {"message": DIRTY, "metadata": {"name": "Mal\x00lory\u202e", "message_id": 7}}
        r = await guest.client.post("/webhooks/rest/webhook", json=body)
        assert r.status_code == 200, r.text
        assert r.json()[0]["text"] == f"echo: {CLEAN}"
        stored = await received_texts(bus, "rest", guest.sender)
    assert [p["text"] for p in stored] == [CLEAN]
    assert "\x00" not in json.dumps(stored) and "\u202e" not in json.dumps(stored)


async def test_websocket_text_is_cleaned_before_it_is_stored(gateway: LiveServer, bus: Bus) -> None:
    async with guest_client(gateway.url) as guest:
        async with ws_session(gateway.ws_url, guest.token) as ws:
            await next_frame(ws, "hello")
            await ws.send(json.dumps({"type": "message", "text": DIRTY, "client_id": "c\x001"}))
            ack = await next_frame(ws, "ack")
            assert ack["client_id"] == "c1"
            reply = await next_frame(ws, "reply")
            assert reply["text"] == f"echo: {CLEAN}"
        stored = await received_texts(bus, "web", guest.sender)
    assert [p["text"] for p in stored] == [CLEAN]


async def test_lone_surrogates_and_oversized_fields_are_422_not_500(gateway: LiveServer) -> None:
    raw = '{"message": "a\\ud800b"}'
    async with guest_client(gateway.url) as guest:
        client = guest.client
        posts = [
            ("/webhooks/rest/webhook", raw),
            ("/webhooks/rest/webhook", '{"message": "hi", "metadata": {"name": "\\udfff"}}'),
            ("/webhooks/rest/webhook", '{"message": "hi", "metadata": {"bot": "\\ud800"}}'),
            ("/webhooks/rest/webhook", '{"\\ud800": "x", "message": "\\ud800"}'),
            (
                "/webhooks/rest/webhook",
                json.dumps({"message": "hi", "metadata": {"name": "n" * 300}}),
            ),
            ("/api/session", '{"token": "\\ud800"}'),
            ("/api/session", '{"user_token": "x\\udc00"}'),
        ]
        for path, body in posts:
            r = await client.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, (path, body, r.status_code, r.text)
            assert r.headers["content-type"] == "application/json"
            detail = r.json()["detail"]
            assert isinstance(detail, list) and detail, detail
            assert all(set(e) == {"loc", "msg", "type"} for e in detail)  # no input echoed
        # metadata keys outside the allow-list are ignored (never stored), whatever they hold
        r = await client.post(
            "/webhooks/rest/webhook",
            content='{"message": "hi", "metadata": {"\\ud800": "\\udc00"}}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200


async def test_a_token_sent_in_a_wrong_field_is_not_echoed(gateway: LiveServer) -> None:
    token = "fds_" + "s" * 3000  # too long for the field
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        r = await client.post("/api/session", json={"token": token})
    assert r.status_code == 422 and token not in r.text


# -- JSON depth ----------------------------------------------------------------------------------


async def test_deeply_nested_json_is_refused_with_a_reason(gateway: LiveServer) -> None:
    huge = "[" * 30_000 + "]" * 30_000
    deep_metadata = json.dumps({"message": "hi", "metadata": {"x": _nested(40)}})
    async with guest_client(gateway.url) as guest:
        for path, body in [
            ("/webhooks/rest/webhook", huge),
            ("/webhooks/rest/webhook", '{"message": ' + huge + "}"),
            ("/webhooks/rest/webhook", deep_metadata),
            ("/api/session", huge),
        ]:
            r = await guest.client.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == 422, (path, r.status_code, r.text[:200])
            assert r.json()["detail"] == "the JSON is nested deeper than 32 levels"
        ok = json.dumps({"message": "hi", "metadata": {"x": _nested(20)}})
        r = await guest.client.post(
            "/webhooks/rest/webhook", content=ok, headers={"content-type": "application/json"}
        )
        assert r.status_code == 200


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value
