"""A local stand-in for Slack's servers: the Web API (``SLACK_API_URL``) recording every call,
response URLs, and a Socket Mode WebSocket. Real HTTP on a free port (aiohttp).

The Slack tests use it, and ``frontdoor bench chaos`` plays Slack with it: ``sign`` and
``event_body`` make the signed Events API requests Slack would send."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from events.embedded import free_port

BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T0001"


@dataclass
class Call:
    """One Web API call as Slack would have received it."""

    method: str
    args: dict[str, Any]
    at: float
    status: int = 200
    token: str | None = None
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeSlack:
    """Records calls; ``fail_next`` queues forced answers (status, headers, body) per method."""

    port: int = field(default_factory=free_port)
    calls: list[Call] = field(default_factory=list)
    fail_next: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = field(
        default_factory=dict
    )
    socket_envelopes: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    #: texts posted with ``chat.postMessage`` by (channel, thread_ts), in the order received
    threads: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: the same posts as ``conversations.replies`` answers them (with their metadata)
    replies: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"http://127.0.0.1:{self.port}/response/{name}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def posted(self, method: str = "chat.postMessage", **match: Any) -> list[Call]:
        """Successful calls of ``method`` whose args contain ``match``."""
        return [
            c
            for c in self.calls
            if c.method == method
            and c.status == 200
            and all(c.args.get(k) == v for k, v in match.items())
        ]

    async def wait_for(
        self, method: str = "chat.postMessage", count: int = 1, timeout: float = 15.0, **match: Any
    ) -> list[Call]:
        """Wait until ``count`` matching successful calls were made; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.posted(method, **match)
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(c.method, c.args.get("channel"), c.args.get("text")) for c in self.calls]
                raise AssertionError(f"no {count} x {method} {match} within {timeout}s; {seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.2))
            except TimeoutError:
                pass

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if raw:
            if request.content_type == "application/json":
                args.update(json.loads(raw))
            else:
                args.update(dict(parse_qsl(raw.decode())))
        for key in ("blocks", "attachments", "metadata"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or args.get("token")
        queued = self.fail_next.get(method)
        if queued:
            status, headers, body = queued.pop(0)
            self.calls.append(Call(method, args, time.monotonic(), status, token))
            self._changed.set()
            return web.json_response(body, status=status, headers=headers)
        body = self._answer(method, args)
        self.calls.append(Call(method, args, time.monotonic(), 200, token, body))
        if method == "chat.postMessage" and body.get("ok") and args.get("thread_ts"):
            thread = (str(args.get("channel")), str(args["thread_ts"]))
            self.threads.setdefault(thread, []).append(str(args.get("text", "")))
            message = {"ts": body["ts"], "text": args.get("text"), "metadata": args.get("metadata")}
            self.replies.setdefault(thread, []).append(message)
        self._changed.set()
        return web.json_response(body)

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://example.slack.com/",
                "team": "Example",
                "user": "frontdoor",
                "team_id": TEAM,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
            }
        if method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            if channel.startswith("CNOT"):
                return {"ok": False, "error": "not_in_channel"}
            ts = f"1800000000.{next(self._ts):06d}"
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text")}}
        if method == "conversations.replies":
            return {
                "ok": True,
                "messages": self.replies.get((str(args.get("channel")), str(args.get("ts"))), []),
            }
        if method in ("chat.update", "chat.postEphemeral"):
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "users.info":
            user = str(args.get("user"))
            return {
                "ok": True,
                "user": {"id": user, "name": "ana", "profile": {"display_name": "Ana Agent"}},
            }
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}
        return {"ok": False, "error": "unknown_method"}

    async def _response(self, request: web.Request) -> web.Response:
        args = json.loads(await request.read() or b"{}")
        self.calls.append(Call("response_url", args, time.monotonic()))
        self._changed.set()
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1})

        async def pump() -> None:
            while True:
                envelope = await self.socket_envelopes.get()
                await ws.send_json(envelope)

        task = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(msg.data))
                    self._changed.set()
        finally:
            task.cancel()
        return ws

    async def wait_socket_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ack in self.socket_acks:
                if ack.get("envelope_id") == envelope_id:
                    return ack
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=0.2)
            except TimeoutError:
                pass
        raise AssertionError(f"no Socket Mode ack for {envelope_id}")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with a request: the v0 signature of ``body`` with ``secret``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def event_body(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope around ``event``."""
    return {
        "token": "legacy-unused",
        "team_id": TEAM,
        "api_app_id": "A0001",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }
