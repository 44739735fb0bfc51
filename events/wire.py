"""Hot-path helpers on top of nats-py: JetStream publish acks and ack-subject metadata.

Why not ``JetStreamContext.publish``: each call there builds a random request token
(``os.urandom``), a done-callback closure and an ``asyncio.wait_for`` (a timer plus a second
future), then a ``PubAck`` dataclass. On a round trip that publishes twice this is a measurable
part of the CPU. ``PublishAcks`` keeps the same protocol (one wildcard inbox subscription, one
future per publish, a bounded wait) with a counter token and one timer handle per publish.

Why not ``Msg.metadata``: it builds a frozen dataclass, a nested pair and a ``datetime`` for
every delivery, where the hot path only needs three integers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic_core import from_json

_STATUS = "Status"
_NO_RESPONDERS = "503"


@dataclass(frozen=True, slots=True)
class AckFields:
    """What a JetStream ack subject says about one delivery."""

    num_delivered: int
    stream_seq: int
    num_pending: int


def ack_fields(reply: str | None) -> AckFields | None:
    """Parse a JetStream ack subject (``$JS.ACK...``); ``None`` when it is not one.

    Both layouts: ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` and
    ``$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    [.<token>]``.
    """
    if not reply or not reply.startswith("$JS.ACK."):
        return None
    tokens = reply.split(".")
    count = len(tokens)
    try:
        if count == 9:
            return AckFields(int(tokens[4]), int(tokens[5]), int(tokens[8]))
        if count >= 11:
            return AckFields(int(tokens[6]), int(tokens[7]), int(tokens[10]))
    except ValueError:
        return None
    return None


def delivery_fields(msg: Msg) -> AckFields | None:
    """``ack_fields`` of a delivered message, falling back to nats-py's parser for a layout we
    do not know; ``None`` only when it is not a JetStream message at all."""
    fields = ack_fields(msg.reply)
    if fields is not None:
        return fields
    try:
        meta = msg.metadata
    except nats.errors.Error:
        return None
    return AckFields(int(meta.num_delivered), int(meta.sequence.stream), int(meta.num_pending))


@dataclass(frozen=True, slots=True)
class StoredAck:
    """JetStream's answer to a publish: the stream, its sequence, and whether it was a duplicate."""

    stream: str
    seq: int
    duplicate: bool


def _expire(future: asyncio.Future[StoredAck]) -> None:
    if not future.done():
        future.set_exception(nats.errors.TimeoutError())


class PublishAcks:
    """Publishes to JetStream and waits for the stream's ack, over one shared inbox.

    Errors match ``JetStreamContext.publish``: ``nats.errors.TimeoutError`` when no ack comes in
    time, ``NoStreamResponseError`` when no stream listens on the subject, ``APIError`` (or its
    subclasses) when JetStream refuses the message.
    """

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix = ""
        self._cut = 0
        self._waiting: dict[str, asyncio.Future[StoredAck]] = {}
        self._counter = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Subscribe the shared ack inbox (nats-py restores it after every reconnect)."""
        async with self._lock:
            if self._prefix:
                return
            inbox = self._nc.new_inbox()
            await self._nc.subscribe(f"{inbox}.*", cb=self._on_ack)
            self._cut = len(inbox) + 1
            self._prefix = f"{inbox}."

    async def _on_ack(self, msg: Msg) -> None:
        if not msg.subject.startswith(self._prefix):
            return  # not an ack (e.g. a JetStream consumer delivering to this inbox)
        future = self._waiting.get(msg.subject[self._cut :])
        if future is None or future.done():
            return
        try:
            future.set_result(parse_stored_ack(msg))
        except Exception as exc:  # JetStream refused it: the publisher gets the error
            future.set_exception(exc)

    async def publish(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float
    ) -> StoredAck:
        """Publish and wait up to ``timeout`` s for JetStream to store it."""
        if not self._prefix:
            await self.start()
        token, future = self._expect()
        try:
            await self._nc.publish(subject, data, reply=self._prefix + token, headers=headers)
            timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
            try:
                return await future
            finally:
                timer.cancel()
        finally:
            del self._waiting[token]

    async def publish_nowait(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float
    ) -> asyncio.Future[StoredAck]:
        """Publish; the returned future resolves to the ack (or fails after ``timeout`` s).

        The pipelined form of ``publish`` for bulk work: send many, then await their acks.
        """
        if not self._prefix:
            await self.start()
        token, future = self._expect()
        try:
            await self._nc.publish(subject, data, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._waiting[token]
            raise
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future)

        def settled(_: asyncio.Future[StoredAck]) -> None:
            timer.cancel()
            del self._waiting[token]

        future.add_done_callback(settled)
        return future

    def _expect(self) -> tuple[str, asyncio.Future[StoredAck]]:
        self._counter += 1
        token = format(self._counter, "x")
        future: asyncio.Future[StoredAck] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return token, future


def parse_stored_ack(msg: Msg) -> StoredAck:
    """Read JetStream's publish ack (raises like ``JetStreamContext.publish``)."""
    if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS and not msg.data:
        raise nats.js.errors.NoStreamResponseError
    resp: dict[str, Any] = from_json(msg.data)
    if "error" in resp:
        raise nats.js.errors.APIError.from_error(resp["error"])
    return StoredAck(
        stream=str(resp.get("stream", "")),
        seq=int(resp["seq"]),
        duplicate=bool(resp.get("duplicate", False)),
    )


async def next_msg(sub: Subscription, timeout: float) -> Msg:
    """``sub.next_msg(timeout)`` without its two tasks, timer and uuid per message.

    Reads the subscription's pending queue like nats-py does, so JetStream flow control still
    waits until the reader has taken the messages (a slow reader is never flooded). Falls back
    to ``next_msg`` should a nats-py release rename the queue.
    """
    queue: asyncio.Queue[Msg] | None = getattr(sub, "_pending_queue", None)
    if queue is None or not hasattr(sub, "_pending_size"):
        return await sub.next_msg(timeout=timeout)
    if sub._conn.is_closed:
        raise nats.errors.ConnectionClosedError
    try:
        msg = queue.get_nowait()
    except asyncio.QueueEmpty:
        try:
            async with asyncio.timeout(timeout):
                msg = await queue.get()
        except TimeoutError:
            if sub._conn.is_closed:
                raise nats.errors.ConnectionClosedError from None
            raise nats.errors.TimeoutError from None
    sub._pending_size -= len(msg.data)
    queue.task_done()
    return msg
