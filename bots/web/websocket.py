"""The web channel's WebSocket ``/ws``: messages in, replies streamed in bus order, resumable.

The first frame authenticates: ``{"type": "auth", "token": "fds_..."}`` (a session from
``POST /api/session``; never in the URL, which ends up in access logs). Without it within
``AUTH_TIMEOUT`` seconds, or with a bad token, the socket is closed with code 4401.

Each connection reads its own conversation's replies from ``FD_EVENTS`` (an ordered read from
``since + 1``), so a reconnect with the last ``seq`` it saw gets every later reply exactly once:
the bus is the per-conversation queue. The protocol is described in docs/web-channel.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bots.personas import UnknownBot
from bots.tasks import cancel_and_wait
from bots.tracking import ObservedReply, TrackedTurn, TurnTracker
from bots.turns import IncomingMessage
from bots.web.limits import MessageTooLong, check_length
from bots.web.ratelimit import RateLimited
from bots.web.sessions import InvalidSession, Session
from events.envelope import Envelope
from events.payloads import Reply
from events.subjects import events_filter

if TYPE_CHECKING:
    from bots.web.app import Gateway

log = logging.getLogger("frontdoor.web.ws")

WORKING_TEXT = "Still working on it — I'll follow up here."
CLOSE_UNAUTHORIZED = 4401
#: Close code of a socket refused by a limit (rate, connections); the reason says which.
CLOSE_TOO_MANY = 4429
#: Seconds a new socket has to send its ``auth`` frame.
AUTH_TIMEOUT = 10.0


class ClientMessage(BaseModel):
    """A ``message`` frame from the widget."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["message"]
    text: str
    bot: str | None = Field(default=None, max_length=64)
    client_id: str | None = Field(default=None, min_length=1, max_length=128)


def reply_frame(item: ObservedReply) -> dict[str, Any]:
    """The ``reply`` frame of a reply."""
    reply, env = item.reply, item.envelope
    return {
        "type": "reply",
        "seq": item.seq,
        "id": str(env.id),
        "correlation_id": str(env.correlation_id),
        "text": reply.text,
        "buttons": [b.model_dump() for b in reply.buttons],
        "image": reply.image,
        "status": reply.status,
        "bot": env.conversation.bot,
        "service": reply.service,
    }


class WebConnection:
    """One open WebSocket of one web conversation."""

    def __init__(
        self, gateway: Gateway, websocket: WebSocket, session: Session, address: str
    ) -> None:
        self.gateway = gateway
        self.ws = websocket
        #: the client address's rate-limit key
        self.address = address
        self.session = session
        self.principal = session.principal
        self.sender = session.sender
        self.tracker = TurnTracker()
        self._send_lock = asyncio.Lock()
        self._turns: asyncio.Queue[IncomingMessage] = asyncio.Queue(maxsize=100)
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.Task[None]] = set()

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame (one writer at a time)."""
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def run(self, since: int | None) -> None:
        """Serve the connection until the client goes away."""
        bus = self.gateway.pipeline.bus
        last_seq = await bus.last_sequence()
        start = since + 1 if since is not None else last_seq + 1
        await self.send(
            {"type": "hello", "sender": self.sender, "since": since, "last_seq": last_seq}
        )
        self._tasks = [
            asyncio.create_task(self._stream(start), name=f"ws-stream-{self.sender}"),
            asyncio.create_task(self._work(), name=f"ws-turns-{self.sender}"),
        ]
        receiver = asyncio.create_task(self._receive(), name=f"ws-receive-{self.sender}")
        try:
            # Whichever ends first (client gone, or the reply stream failed) ends the connection;
            # the client reconnects with ?since= and loses nothing.
            await asyncio.wait({receiver, self._tasks[0]}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(receiver)
            for task in [*self._tasks, *self._timers]:
                await cancel_and_wait(task)

    async def _stream(self, start: int) -> None:
        bus = self.gateway.pipeline.bus
        subject = events_filter(channel="web", conversation_id=self.sender, envelope_type="reply")
        try:
            async for seq, env in bus.tail(subject, start):
                try:
                    reply = env.payload_as(Reply)
                except ValidationError:
                    continue
                item = ObservedReply(seq, env, reply)
                await self.send(reply_frame(item))
                turn = self.tracker.observe(item)
                if turn is not None and turn.complete:
                    await self._finish(turn)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        except Exception:
            log.exception("reply stream of %s failed; closing the socket", self.sender)

    async def _finish(self, turn: TrackedTurn) -> None:
        if self.tracker.end(turn.correlation_id) is not None:
            await self.send(
                {"type": "typing", "active": False, "correlation_id": str(turn.correlation_id)}
            )

    async def _receive(self) -> None:
        while True:
            try:
                raw = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                return
            await self._on_frame(raw)

    async def _error(
        self, code: str, detail: str, client_id: str | None = None, **extra: Any
    ) -> None:
        await self.send(
            {"type": "error", "code": code, "detail": detail, "client_id": client_id, **extra}
        )

    async def _on_frame(self, raw: str) -> None:
        settings = self.gateway.settings
        if len(raw) > settings.max_body_bytes:
            await self._error("too_long", f"frame exceeds {settings.max_body_bytes} bytes")
            return
        try:
            data = json.loads(raw)
        except ValueError:
            await self._error("bad_json", "frames are JSON objects")
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "ping":
            await self.send({"type": "pong"})
            return
        if kind != "message":
            await self._error("invalid", "unknown frame type; send 'message' or 'ping'")
            return
        try:
            frame = ClientMessage.model_validate(data)
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            client_id = data.get("client_id") if isinstance(data.get("client_id"), str) else None
            await self._error("invalid", reasons, client_id)
            return
        text = frame.text.strip()
        if not text:
            await self._error("invalid", "message is empty", frame.client_id)
            return
        try:
            check_length(text, settings.max_message_chars)
        except MessageTooLong as exc:
            await self._error("too_long", str(exc), frame.client_id)
            return
        try:
            bot = self.gateway.bots.get(frame.bot)
        except UnknownBot as exc:
            await self._error("invalid", str(exc), frame.client_id)
            return
        guard = self.gateway.guard
        try:
            await guard.limits.hit(guard.address, self.address)
            await guard.caller_hit(self.principal, self.address)
        except RateLimited as exc:
            await self._error(
                "rate_limited", str(exc), frame.client_id, retry_after=exc.retry_after
            )
            return
        msg = IncomingMessage(
            channel="web",
            conversation_id=self.sender,
            text=text,
            user_id=self.principal.actor.id,
            bot=bot.name,
            message_id=frame.client_id or uuid.uuid4().hex,
            user_name=self.principal.actor.name,
            user_email=self.principal.email,
        )
        try:
            self._turns.put_nowait(msg)
        except asyncio.QueueFull:
            await self._error(
                "rate_limited", "too many messages waiting", frame.client_id, retry_after=1
            )

    async def _work(self) -> None:
        """Run this conversation's turns one after the other (their order is the user's)."""
        while True:
            msg = await self._turns.get()
            try:
                await self._run_turn(msg)
            except (WebSocketDisconnect, RuntimeError):
                return
            except Exception:
                log.exception("web turn failed for %s", self.sender)
                await self._error("internal", "sorry, that message could not be processed")

    async def _run_turn(self, msg: IncomingMessage) -> None:
        cid = msg.envelope_id
        duplicate = self.gateway.pipeline.already_seen(msg)
        await self.send(
            {
                "type": "ack",
                "client_id": msg.message_id,
                "correlation_id": str(cid),
                "duplicate": duplicate,
            }
        )
        if duplicate:
            return
        turn = self.tracker.begin(cid)
        await self.send({"type": "typing", "active": True, "correlation_id": str(cid)})
        try:
            result = await self.gateway.pipeline.handle(msg)
        except BaseException:
            self.tracker.end(cid)
            raise
        if result.duplicate:  # processed before a restart of this replica: nothing new comes
            await self._finish(turn)
            return
        turn.expect(result.reply_ids, result.intent_ids)
        if turn.complete:
            await self._finish(turn)
            return
        timer = asyncio.create_task(self._watch_slow(msg, turn))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _watch_slow(self, msg: IncomingMessage, turn: TrackedTurn) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.done.wait(), self.gateway.settings.slow_turn_seconds)
            return
        cid = turn.correlation_id
        actor = turn.replies[0].envelope.actor if turn.replies else None
        if actor is None:
            from events.envelope import Actor

            actor = Actor(id=msg.user_id)
        working = Envelope.new(
            "reply",
            Reply(text=WORKING_TEXT, status="working"),
            conversation=msg.conversation,
            actor=actor,
            correlation_id=cid,
            causation_id=cid,
            id=uuid.uuid5(cid, "working"),
        )
        await self.gateway.pipeline.bus.publish(working)
        # The turn stays tracked: typing stops when the late answer arrives.


async def _authenticate(gateway: Gateway, websocket: WebSocket) -> Session:
    """The session of the socket's first frame (``auth``), or ``InvalidSession``."""
    try:
        async with asyncio.timeout(AUTH_TIMEOUT):
            raw = await websocket.receive_text()
    except TimeoutError:
        raise InvalidSession("no auth frame in time") from None
    except (WebSocketDisconnect, RuntimeError, KeyError):
        raise InvalidSession("no auth frame") from None
    try:
        frame = json.loads(raw) if len(raw) <= 4096 else None
    except (ValueError, RecursionError):
        frame = None
    token = frame.get("token") if isinstance(frame, dict) and frame.get("type") == "auth" else None
    if not isinstance(token, str):
        raise InvalidSession('the first frame must be {"type": "auth", "token": "<session>"}')
    return gateway.signer.verify(token)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` and ``reason`` (cut to the 123 bytes a close frame can carry)."""
    data = reason.encode("utf-8", "replace")[:123].decode("utf-8", "ignore")
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=data)


def websocket_router() -> APIRouter:
    """The ``/ws`` route (the gateway is ``websocket.app.state.gateway``)."""
    router = APIRouter()

    @router.websocket("/ws")
    async def ws_endpoint(
        websocket: WebSocket,
        since: int | None = Query(default=None, ge=0),
    ) -> None:
        gateway: Gateway = websocket.app.state.gateway
        await websocket.accept()
        try:
            address = await gateway.guard.admit(websocket.scope)
        except RateLimited as exc:
            await _close(websocket, CLOSE_TOO_MANY, exc.short)
            return
        try:
            session = await _authenticate(gateway, websocket)
        except InvalidSession as exc:
            await gateway.guard.failed(address)
            await _close(websocket, CLOSE_UNAUTHORIZED, str(exc))
            return
        connection = WebConnection(gateway, websocket, session, address)
        try:
            await connection.run(since)
        except WebSocketDisconnect:
            pass
        finally:
            with contextlib.suppress(Exception):
                await websocket.close()

    return router
