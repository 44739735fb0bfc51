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
import uuid
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocketState

from bots.personas import UnknownBot
from bots.tasks import cancel_and_wait
from bots.tracking import ObservedReply, TrackedTurn, TurnTracker
from bots.turns import IncomingMessage
from bots.web.errors import field_errors
from bots.web.guard import TooManySockets
from bots.web.jsonbody import JsonTooDeep, parse_json
from bots.web.limits import MessageTooLong, check_length
from bots.web.ratelimit import RateLimited
from bots.web.sessions import InvalidSession, Session
from bots.web.text import BadText, EdgeText, clean_text
from events.envelope import Envelope
from events.payloads import Reply
from events.subjects import events_filter, typing_subject

if TYPE_CHECKING:
    from bots.web.app import Gateway


WORKING_TEXT = "Still working on it — I'll follow up here."
CLOSE_UNAUTHORIZED = 4401
#: Close code of a connection that failed on our side; the reason carries a reference.
CLOSE_INTERNAL = 1011
#: Close code of a socket refused by a limit (rate, connections); the reason says which.
CLOSE_TOO_MANY = 4429
#: Close code of a bad connection request (e.g. ``since``); the reason says what is wrong.
CLOSE_BAD_REQUEST = 4400
#: The largest ``since`` (JetStream sequences are below 2**63 in practice).
MAX_SINCE = 2**63 - 2
#: Seconds a new socket has to send its ``auth`` frame.
AUTH_TIMEOUT = 10.0


class ClientMessage(BaseModel):
    """A ``message`` frame from the widget."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["message"]
    text: EdgeText
    bot: EdgeText | None = Field(default=None, max_length=64)
    client_id: EdgeText | None = Field(default=None, min_length=1, max_length=128)


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
        self._typed_at = 0.0
        #: how to close when the connection ends on our side (code, reason); a normal close else
        self.close_with: tuple[int, str] | None = None

    @property
    def gone(self) -> bool:
        """True once the socket is closed (by the client or by us)."""
        return WebSocketState.DISCONNECTED in (self.ws.client_state, self.ws.application_state)

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one JSON frame (one writer at a time)."""
        async with self._send_lock:
            await self.ws.send_text(frame_text(frame))

    async def run(self, since: int | None) -> None:
        """Serve the connection until the client goes away."""
        bus = self.gateway.pipeline.bus
        last_seq = await bus.last_sequence()
        if since is not None and since > last_seq:
            since = last_seq  # nothing newer exists (the bus was reset): resume from its end
        start = since + 1 if since is not None else last_seq + 1
        await self.send(
            {"type": "hello", "sender": self.sender, "since": since, "last_seq": last_seq}
        )
        self._tasks = [
            asyncio.create_task(self._stream(start), name=f"ws-stream-{self.sender}"),
            asyncio.create_task(self._work(), name=f"ws-turns-{self.sender}"),
        ]
        receiver = asyncio.create_task(self._receive(), name=f"ws-receive-{self.sender}")
        typing = await bus.subscribe_core(
            typing_subject("web", self.sender, "agent"), self._agent_typing
        )
        try:
            # Whichever ends first (client gone, or the reply stream failed) ends the connection;
            # the client reconnects with ?since= and loses nothing.
            await asyncio.wait({receiver, self._tasks[0]}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(receiver)
            for task in [*self._tasks, *self._timers]:
                await cancel_and_wait(task)
            with contextlib.suppress(Exception):
                await typing.unsubscribe()

    async def _agent_typing(self, data: bytes) -> None:
        """A support agent is typing in the workspace (core NATS; never stored)."""
        try:
            signal = json.loads(data)
            active = bool(signal.get("active", True)) if isinstance(signal, dict) else True
            await self.send({"type": "typing", "active": active, "who": "agent"})
        except Exception:  # the socket went away, or a malformed signal: typing is best effort
            return

    async def _user_typing(self) -> None:
        """The user is typing: tell the agent workspace (at most every 2 s per socket)."""
        now = asyncio.get_running_loop().time()
        if now - self._typed_at < 2.0:
            return
        self._typed_at = now
        signal = json.dumps({"active": True, "who": "user"}).encode()
        with contextlib.suppress(Exception):
            await self.gateway.pipeline.bus.publish_core(
                typing_subject("web", self.sender, "user"), signal
            )

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
        except (WebSocketDisconnect, OSError):
            return
        except Exception as exc:
            if self.gone:
                return  # a send after the client left
            reference = self.gateway.errors.report(exc, f"WS reply stream of {self.sender}")
            self.close_with = (
                CLOSE_INTERNAL,
                f"the reply stream failed (reference {reference}); reconnect with since",
            )

    async def _finish(self, turn: TrackedTurn) -> None:
        if self.tracker.end(turn.correlation_id) is not None:
            await self.send(
                {"type": "typing", "active": False, "correlation_id": str(turn.correlation_id)}
            )

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                await self._error("bad_frame", "frames are JSON text frames, not binary ones")
                continue
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
            data = parse_json(raw, settings.max_json_depth)
        except JsonTooDeep as exc:
            await self._error("invalid", f"{exc}; frames are flat JSON objects")
            return
        except ValueError:
            await self._error("bad_json", "frames are JSON objects")
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "ping":
            await self.send({"type": "pong"})
            return
        if kind == "typing":
            await self._user_typing()
            return
        if kind != "message":
            await self._error("invalid", "unknown frame type; send 'message', 'typing' or 'ping'")
            return
        try:
            frame = ClientMessage.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc.errors())
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            await self._error("invalid", reasons, _echo(data.get("client_id")))
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
            except WebSocketDisconnect:
                return
            except Exception as exc:
                if self.gone:
                    return  # a send after the client left
                reference = self.gateway.errors.report(exc, f"WS turn of {self.sender}")
                await self._error(
                    "internal",
                    f"sorry, that message could not be processed (reference {reference})",
                    msg.message_id,
                )

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


def frame_text(frame: dict[str, Any]) -> str:
    """A frame as JSON text that can always be sent (non-ASCII kept unless it cannot be
    encoded)."""
    text = json.dumps(frame, ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(frame)  # escapes what UTF-8 cannot carry
    return text


def _echo(client_id: object) -> str | None:
    """A client id fit to be sent back (``None`` when it is not a clean string)."""
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 128:
        return None
    try:
        return client_id if clean_text(client_id) == client_id else None
    except BadText:
        return None


def parse_since(raw: str | None) -> int | None:
    """The ``since`` query parameter: ``None`` or a sequence 0 <= since < 2**63;
    ``ValueError`` with the reason otherwise."""
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise ValueError(f"since must be a whole number from 0 to {MAX_SINCE}")
    value = int(raw)
    if value > MAX_SINCE:
        raise ValueError(f"since must be a whole number from 0 to {MAX_SINCE}")
    return value


async def _authenticate(gateway: Gateway, websocket: WebSocket) -> Session:
    """The session of the socket's first frame (``auth``), or ``InvalidSession``."""
    try:
        async with asyncio.timeout(AUTH_TIMEOUT):
            message = await websocket.receive()
    except TimeoutError:
        raise InvalidSession("no auth frame in time") from None
    except (WebSocketDisconnect, RuntimeError):
        raise InvalidSession("no auth frame") from None
    raw = message.get("text")
    if message["type"] == "websocket.disconnect":
        raise InvalidSession("no auth frame")
    if raw is None:
        raise InvalidSession("the auth frame must be a JSON text frame, not a binary one")
    try:
        frame = parse_json(raw, 4) if len(raw) <= 4096 else None
    except ValueError:
        frame = None
    token = frame.get("token") if isinstance(frame, dict) and frame.get("type") == "auth" else None
    if not isinstance(token, str):
        raise InvalidSession('the first frame must be {"type": "auth", "token": "<session>"}')
    return gateway.signer.verify(token)


async def _serve(gateway: Gateway, websocket: WebSocket, address: str, since: int | None) -> None:
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
        if connection.close_with is not None:
            await _close(websocket, *connection.close_with)
        else:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` and ``reason`` (cut to the 123 bytes a close frame can carry)."""
    data = reason.encode("utf-8", "replace")[:123].decode("utf-8", "ignore")
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=data)


def websocket_router() -> APIRouter:
    """The ``/ws`` route (the gateway is ``websocket.app.state.gateway``)."""
    router = APIRouter()

    @router.websocket("/ws")
    async def ws_endpoint(websocket: WebSocket) -> None:
        gateway: Gateway = websocket.app.state.gateway
        await websocket.accept()
        try:
            since = parse_since(websocket.query_params.get("since"))
        except ValueError as exc:
            await _close(websocket, CLOSE_BAD_REQUEST, str(exc))
            return
        try:
            address = await gateway.guard.admit(websocket.scope)
        except RateLimited as exc:
            await _close(websocket, CLOSE_TOO_MANY, exc.short)
            return
        try:
            gateway.sockets.open(address)
        except TooManySockets as exc:
            await _close(websocket, CLOSE_TOO_MANY, str(exc))
            return
        try:
            await _serve(gateway, websocket, address, since)
        finally:
            gateway.sockets.close(address)

    return router
