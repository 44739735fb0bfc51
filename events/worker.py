"""The work-queue loop behind ``Bus.work``: a pull consumer that keeps its slots busy.

Design: one private inbox per worker and *pull requests* sized to the free slots
(``batch = concurrency - running - buffered - requested``). Messages are dispatched to handler
tasks the moment they arrive (no lingering fetch between them), so one in-flight intent costs a
single network hop and fifty in flight are fetched in one or two batches.

Accounting (the invariant ``running + buffered + requested <= concurrency`` holds except after a
lost pull request is written off, when the few surplus messages wait in ``buffered``):

- ``requested``: messages asked for and not yet received. A message decrements it; a ``408``
  (request expired) or ``409`` status subtracts its ``Nats-Pending-Messages``.
- A pull request can vanish without a status (server restart, reconnect). When the client
  reconnects, or nothing at all (message, heartbeat, status) arrived for three heartbeat
  intervals while something was requested, the outstanding count is written off and a fresh
  request is sent. Surplus deliveries caused by that are buffered, never run beyond
  ``concurrency``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from pydantic import ValidationError

from events.envelope import Envelope
from events.wire import delivery_fields

log = logging.getLogger("frontdoor.bus")

_STATUS = "Status"
_PENDING = "Nats-Pending-Messages"


@dataclass
class Delivery:
    """One delivery of an intent to a service worker, with its acknowledgement controls."""

    msg: Msg
    envelope: Envelope | None
    error: str | None
    num_delivered: int
    max_deliver: int
    stream_seq: int

    @property
    def is_last_delivery(self) -> bool:
        """True when JetStream will not deliver this message again after a nak."""
        return self.num_delivered >= self.max_deliver

    async def ack(self) -> None:
        """Done: remove it from the work queue.

        Sent without waiting for the server's confirmation (one network hop less per intent).
        Call it only once the outcome is stored (e.g. the reply's publish was acknowledged): if
        the ack itself is lost (connection drop, server restart), JetStream redelivers after the
        consumer's ack deadline and the handler runs again, exactly as when a confirmation is
        lost.
        """
        await self.msg.ack()

    async def ack_sync(self, timeout: float = 5.0) -> None:
        """Done, and wait until the server confirms it removed the message."""
        await self.msg.ack_sync(timeout=timeout)

    async def nak(self, delay: float | None = None) -> None:
        """Failed this time: redeliver after ``delay`` seconds."""
        await self.msg.nak(delay=delay)

    async def term(self) -> None:
        """Never redeliver (malformed, or finally failed and answered)."""
        await self.msg.term()

    async def in_progress(self) -> None:
        """Still working: reset the ack timer."""
        await self.msg.in_progress()


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


@dataclass
class Worker:
    """A running consumer loop; ``stop()`` stops fetching and lets in-flight work finish."""

    service: str
    _task: asyncio.Task[None] | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    handled: int = 0

    async def stop(self, grace: float = 10.0) -> None:
        """Stop fetching; wait up to ``grace`` s for in-flight deliveries.

        Anything not acknowledged by then stays in the work queue and is redelivered to another
        instance (or to this one after a restart): nothing is lost.
        """
        self._stopping.set()
        self._wake.set()
        if self._task:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
        if self._task and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()


class PullLoop:
    """Feeds ``handler`` from the durable pull consumer ``durable`` of ``stream``."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        api_prefix: str,
        stream: str,
        durable: str,
        handler: DeliveryHandler,
        worker: Worker,
        concurrency: int,
        max_deliver: int,
        expires: float = 10.0,
        heartbeat: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._handler = handler
        self._worker = worker
        self._concurrency = concurrency
        self._max_deliver = max_deliver
        self._expires = expires
        self._heartbeat = heartbeat
        self._inbox = nc.new_inbox()
        self._requested = 0
        self._running = 0
        self._buffered: deque[Msg] = deque()
        self._last_activity = time.monotonic()
        self._reconnects = int(nc.stats.get("reconnects", 0))

    # -- receiving ---------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        self._last_activity = time.monotonic()
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status and not msg.data:
            if status != "100":  # 100 is an idle heartbeat
                # 408/409/...: the pull request ended; what it still had pending never comes.
                pending = msg.headers.get(_PENDING) if msg.headers else None
                if pending is not None:
                    self._requested = max(0, self._requested - int(pending))
                else:
                    self._requested = 0
                self._worker._wake.set()
            return
        self._requested = max(0, self._requested - 1)
        if self._worker._stopping.is_set():
            with contextlib.suppress(Exception):
                await msg.nak()
            return
        self._buffered.append(msg)
        self._dispatch()
        self._wake_if_worth_pulling()

    def _dispatch(self) -> None:
        while self._buffered and self._running < self._concurrency:
            msg = self._buffered.popleft()
            self._running += 1
            task = asyncio.create_task(self._run_one(msg))
            self._worker._inflight.add(task)
            task.add_done_callback(self._worker._inflight.discard)

    async def _run_one(self, msg: Msg) -> None:
        try:
            meta = delivery_fields(msg)
            if meta is None:
                raise ValueError(f"not a JetStream delivery (reply subject {msg.reply!r})")
            try:
                envelope: Envelope | None = Envelope.from_bytes(msg.data)
                error = None
            except ValidationError as exc:
                envelope, error = None, str(exc)
            delivery = Delivery(
                msg=msg,
                envelope=envelope,
                error=error,
                num_delivered=meta.num_delivered,
                max_deliver=self._max_deliver,
                stream_seq=meta.stream_seq,
            )
            await self._handler(delivery)
            self._worker.handled += 1
        except Exception:
            log.exception(
                "worker %s: unhandled error; leaving message for redelivery", self._worker.service
            )
        finally:
            self._running -= 1
            if self._worker._stopping.is_set():
                self._worker._wake.set()
            else:
                self._dispatch()
                self._wake_if_worth_pulling()

    def _wake_if_worth_pulling(self) -> None:
        # The pull loop tops up only when half the window is free (or nothing is requested):
        # waking it for every finished message would cost a loop pass each time for nothing.
        free = self._free()
        if free > 0 and (self._requested == 0 or free >= max(1, self._concurrency // 2)):
            self._worker._wake.set()

    # -- pulling -----------------------------------------------------------------------------

    def _free(self) -> int:
        return self._concurrency - self._running - len(self._buffered) - self._requested

    async def _pull(self, batch: int) -> None:
        request = {
            "batch": batch,
            "expires": int(self._expires * 1e9),
            "idle_heartbeat": int(self._heartbeat * 1e9),
        }
        self._requested += batch
        self._last_activity = time.monotonic()
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), self._inbox)

    def _write_off_lost_requests(self) -> None:
        reconnects = int(self._nc.stats.get("reconnects", 0))
        if reconnects != self._reconnects:
            self._reconnects = reconnects
            self._requested = 0
            return
        silent_for = time.monotonic() - self._last_activity
        if self._requested and silent_for > 3 * self._heartbeat:
            log.info("worker %s: pull request lost, asking again", self._worker.service)
            self._requested = 0

    async def run(self) -> None:
        """Pull and dispatch until the worker is stopped."""
        worker = self._worker
        sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        try:
            while not worker._stopping.is_set():
                worker._wake.clear()
                try:
                    if self._nc.is_connected:
                        self._write_off_lost_requests()
                        free = self._free()
                        # Top up when half the window is free (or nothing is requested at all),
                        # so a burst is fetched in a few large batches, not one by one.
                        if free > 0 and (
                            self._requested == 0 or free >= max(1, self._concurrency // 2)
                        ):
                            await self._pull(free)
                except Exception as exc:
                    log.info("worker %s: pull interrupted (%r), retrying", worker.service, exc)
                    self._requested = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker._wake.wait(), timeout=self._heartbeat)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            # Hand back what we hold but have not started, so another instance takes it now.
            while self._buffered:
                msg = self._buffered.popleft()
                with contextlib.suppress(Exception):
                    await msg.nak()
