"""The WebSocket: auth, ordering, typing, resume after reconnect without gap or duplicate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from events.bus import Bus

from .conftest import LiveServer, ScriptedDialogue, start_gateway
from .web_clients import ws_session


async def session(live: LiveServer) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url) as client:
        return (await client.post("/api/session")).json()


async def frames_until(ws: Any, pred, timeout: float = 10.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            out.append(frame)
            if pred(frame, out):
                return out


def replies(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "reply"]


@pytest.mark.parametrize(
    "first_frame",
    [
        '{"type": "auth", "token": "forged"}',
        '{"type": "auth", "token": "fds_forged.x.y"}',
        '{"type": "auth"}',
        '{"type": "message", "text": "hi"}',
        "not json",
    ],
)
async def test_a_socket_without_a_valid_auth_frame_is_closed_4401(
    gateway: LiveServer, first_frame: str
) -> None:
    async with websockets.connect(gateway.ws_url) as ws:
        await ws.send(first_frame)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_a_token_in_the_url_is_not_accepted(gateway: LiveServer) -> None:
    """Tokens never travel in URLs (they end up in access logs)."""
    s = await session(gateway)
    async with websockets.connect(f"{gateway.ws_url}?token={s['token']}") as ws:
        await ws.send(json.dumps({"type": "ping"}))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_turn_streams_ack_typing_replies_in_order(gateway: LiveServer) -> None:
    s = await session(gateway)
    async with ws_session(gateway.ws_url, s["token"]) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["sender"] == s["sender"]
        await ws.send(
            json.dumps({"type": "message", "text": "ticket disk full", "client_id": "c1"})
        )
        frames = await frames_until(
            ws, lambda f, _o: f["type"] == "typing" and f["active"] is False
        )
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "ack" and frames[0]["client_id"] == "c1"
    assert "typing" in kinds
    got = replies(frames)
    assert got[0]["text"] == "Opening a ticket…"
    assert got[1]["text"].startswith("Ticket #") and got[1]["service"] == "echo"
    assert got[0]["seq"] < got[1]["seq"]


async def test_many_messages_arrive_in_bus_order(gateway: LiveServer) -> None:
    s = await session(gateway)
    async with ws_session(gateway.ws_url, s["token"]) as ws:
        await ws.recv()
        for i in range(5):
            await ws.send(
                json.dumps({"type": "message", "text": f"count {i + 1}", "client_id": f"m{i}"})
            )
        frames = await frames_until(ws, lambda _f, out: len(replies(out)) == 15)
    got = replies(frames)
    seqs = [r["seq"] for r in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 15
    assert [r["text"] for r in got] == [f"chatbot {j}" for i in range(1, 6) for j in range(i)]


async def test_resume_after_reconnect_no_gap_no_duplicate(gateway: LiveServer, bus: Bus) -> None:
    s = await session(gateway)
    async with ws_session(gateway.ws_url, s["token"]) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "text": "count 3", "client_id": "a"}))
        first = replies(await frames_until(ws, lambda _f, out: len(replies(out)) == 1))
    last_seen = first[0]["seq"]
    async with ws_session(gateway.ws_url, s["token"]) as ws2:
        await ws2.recv()
        await ws2.send(json.dumps({"type": "message", "text": "count 2", "client_id": "b"}))
        await frames_until(ws2, lambda f, _o: f["type"] == "typing" and f["active"] is False)
    # page reload: same token, since = the last seq the page showed
    async with ws_session(gateway.ws_url, s["token"], since=last_seen) as ws3:
        hello = json.loads(await ws3.recv())
        assert hello["since"] == last_seen
        resent = replies(await frames_until(ws3, lambda _f, out: len(replies(out)) == 4))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                extra = json.loads(await ws3.recv())
                raise AssertionError(f"unexpected frame {extra}")
    assert [r["text"] for r in resent] == ["chatbot 1", "chatbot 2", "chatbot 0", "chatbot 1"]
    seqs = [r["seq"] for r in resent]
    assert seqs[0] > last_seen and seqs == sorted(seqs) and len(set(seqs)) == 4


async def test_same_client_id_twice_is_processed_once(gateway: LiveServer) -> None:
    s = await session(gateway)
    async with ws_session(gateway.ws_url, s["token"]) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "text": "count 1", "client_id": "dup"}))
        await ws.send(json.dumps({"type": "message", "text": "count 1", "client_id": "dup"}))
        frames = await frames_until(
            ws,
            lambda _f, out: (
                len([f for f in out if f["type"] == "ack"]) == 2 and len(replies(out)) >= 1
            ),
        )
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                f = json.loads(await ws.recv())
                while f["type"] != "reply":
                    f = json.loads(await ws.recv())
                raise AssertionError(f"duplicate processed: {f}")
    acks = [f for f in frames if f["type"] == "ack"]
    assert [a["duplicate"] for a in acks] == [False, True]
    assert len(replies(frames)) == 1


async def test_ws_limits_and_bad_frames_answer_errors(bus: Bus) -> None:
    live = await start_gateway(
        bus, ScriptedDialogue(), max_message_chars=10, rate_limit=2, rate_window_seconds=60
    )
    try:
        s = await session(live)
        async with ws_session(live.ws_url, s["token"]) as ws:
            await ws.recv()

            async def ask(frame: Any) -> dict[str, Any]:
                await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
                out = await frames_until(ws, lambda f, _o: f["type"] in ("error", "pong"))
                return out[-1]

            assert (await ask("{nope"))["code"] == "bad_json"
            assert (await ask({"type": "dance"}))["code"] == "invalid"
            assert (await ask({"type": "ping"}))["type"] == "pong"
            err = await ask({"type": "message", "text": "x" * 11, "client_id": "l"})
            assert (
                err["code"] == "too_long"
                and err["client_id"] == "l"
                and "limit is 10" in err["detail"]
            )
            err = await ask({"type": "message", "text": "hi", "bot": "ghost"})
            assert err["code"] == "invalid" and "unknown bot" in err["detail"]
            await ws.send(json.dumps({"type": "message", "text": "a"}))
            await ws.send(json.dumps({"type": "message", "text": "b"}))
            err = await ask({"type": "message", "text": "c", "client_id": "r"})
            assert err["code"] == "rate_limited" and err["retry_after"] >= 1
    finally:
        await live.stop()


async def test_xss_text_is_json_data(gateway: LiveServer) -> None:
    evil = "<img src=x onerror=alert(1)>"
    s = await session(gateway)
    async with ws_session(gateway.ws_url, s["token"]) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "text": evil}))
        got = replies(await frames_until(ws, lambda _f, out: len(replies(out)) == 1))
    assert got[0]["text"] == f"echo: {evil}"


async def test_slow_turn_gets_working_note_then_answer(bus: Bus, echo_runner: object) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), slow_turn_seconds=0.3)
    try:
        s = await session(live)
        async with ws_session(live.ws_url, s["token"]) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "text": "slow 1"}))
            frames = await frames_until(ws, lambda f, _o: f["type"] == "typing" and not f["active"])
        got = replies(frames)
        assert [(r["status"], r["text"]) for r in got] == [
            ("working", "Still working on it — I'll follow up here."),
            ("ok", "Done after 1 s"),
        ]
    finally:
        await live.stop()


@pytest.mark.parametrize("wait_for_ack", [False, True])
async def test_a_message_resent_after_the_socket_closed_mid_turn_is_answered_once(
    bus: Bus, echo_runner: object, wait_for_ack: bool
) -> None:
    """The socket closes between sending and the reply; the page reconnects with ``since`` and
    resends the same ``client_id``, as the docs say: the answer comes once, on the new socket."""
    live = await start_gateway(bus, ScriptedDialogue(), slow_turn_seconds=5.0)
    try:
        s = await session(live)
        async with ws_session(live.ws_url, s["token"]) as ws:
            hello = json.loads(await ws.recv())
            frame = {"type": "message", "text": "slow 1", "client_id": "c-1"}
            await ws.send(json.dumps(frame))
            if wait_for_ack:
                await frames_until(ws, lambda f, _o: f["type"] == "ack")
        async with ws_session(live.ws_url, s["token"], since=hello["last_seq"]) as ws2:
            await ws2.recv()
            await ws2.send(json.dumps(frame))
            got = replies(await frames_until(ws2, lambda _f, out: len(replies(out)) == 1))
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.5):
                    while True:
                        extra = json.loads(await ws2.recv())
                        if extra["type"] == "reply":
                            raise AssertionError(f"answered twice: {extra}")
        assert [r["text"] for r in got] == ["Done after 1 s"]
    finally:
        await live.stop()
