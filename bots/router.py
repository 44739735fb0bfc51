"""The reply router: a durable, ordered reader of every ``reply`` on the bus.

It reads ``fd.event.*.*.reply`` in stream order from the position stored in the KV bucket
``CURSORS_BUCKET`` and hands each reply to the adapter registered for its channel (``rest``,
``web``, ``slack``, ...). Each channel has its own ordered queue, so a slow channel (Slack's
HTTP API) does not hold up another; within a channel, replies are delivered in bus order.

The stored position is the highest sequence below which every reply has been delivered (written
at most every ``save_interval`` seconds while running). A graceful stop drains the queues and
stores it, so after a restart the replies published while the front door was down are
delivered exactly once. (After a crash, the replies delivered in the last ``save_interval``
seconds before it may be delivered again: at-least-once.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from pydantic import ValidationError

from bots.tasks import cancel_and_wait
from bots.tracking import ObservedReply
from events.bus import Bus
from events.payloads import Reply
from events.subjects import CURSORS_BUCKET, events_filter

log = logging.getLogger("frontdoor.router")

REPLIES_FILTER = events_filter(envelope_type="reply")


class DeliverLater(Exception):
    """Raised by an adapter that cannot deliver a reply *yet* (e.g. another replica is posting
    it): the lane retries it shortly, without logging an error, and keeps its order."""


class ChannelAdapter(Protocol):
    """Delivers replies to one channel (the web sockets, REST pollers, Slack threads)."""

    async def deliver(self, item: ObservedReply) -> None:
        """Deliver one reply; raise to have it retried (with back-off)."""
        ...


class _Lane:
    """One channel's ordered queue and its delivering task."""

    def __init__(self, name: str, adapter: ChannelAdapter, router: ReplyRouter) -> None:
        self.name = name
        self.adapter = adapter
        self.queue: asyncio.Queue[ObservedReply] = asyncio.Queue()
        self.task = asyncio.create_task(self._run(router), name=f"router-lane-{name}")

    async def _run(self, router: ReplyRouter) -> None:
        while True:
            item = await self.queue.get()
            delay = 0.1
            while True:
                try:
                    await self.adapter.deliver(item)
                    break
                except asyncio.CancelledError:
                    raise
                except DeliverLater as later:
                    log.debug("channel %s: reply seq %s later: %s", self.name, item.seq, later)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                except Exception:
                    log.exception(
                        "channel %s failed to deliver reply seq %s; retrying in %.1fs",
                        self.name,
                        item.seq,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            router._delivered(item.seq)
            self.queue.task_done()


class ReplyRouter:
    """Routes replies from the bus to channel adapters, in bus order, resumably."""

    def __init__(
        self,
        bus: Bus,
        *,
        name: str = "reply_router",
        cursor_bucket: str = CURSORS_BUCKET,
        save_interval: float = 0.2,
    ) -> None:
        self.bus = bus
        self.name = name
        self._bucket = cursor_bucket
        self._adapters: dict[str, ChannelAdapter] = {}
        self._lanes: dict[str, _Lane] = {}
        self._inflight: set[int] = set()
        self._read_seq = 0
        self._saved_seq = 0
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._kv: Any = None  # the cursor KV bucket, opened at start
        # at most one cursor write per interval (not one per reply under load); a graceful stop
        # stores the exact position, a crash replays at most this window's replies
        self._save_interval = save_interval
        self.delivered = 0

    def register(self, channel: str, adapter: ChannelAdapter) -> None:
        """Deliver replies of ``channel`` to ``adapter`` (call before ``start``)."""
        self._adapters[channel] = adapter

    @property
    def running(self) -> bool:
        """True while the reader runs."""
        return self._task is not None and not self._task.done()

    @property
    def position(self) -> int:
        """Every reply up to this sequence has been delivered."""
        return min(self._inflight) - 1 if self._inflight else self._read_seq

    async def start(self) -> None:
        """Load the stored position and start reading."""
        self._kv = await self.bus.key_value(self._bucket)
        stored = await self._load()
        if stored is None:
            stored = await self.bus.last_sequence()
            await self._kv.put(self.name, str(stored).encode())
        self._read_seq = self._saved_seq = stored
        self._task = asyncio.create_task(self._read(stored + 1), name="reply-router")
        self._saver = asyncio.create_task(self._save_loop(), name="reply-router-cursor")

    async def _load(self) -> int | None:
        assert self._kv is not None
        try:
            entry = await self._kv.get(self.name)
        except Exception:  # the key does not exist yet
            return None
        try:
            return int((entry.value or b"").decode())
        except ValueError:
            log.warning("stored reply-router cursor %r is not a number; starting at the end", entry)
            return None

    async def stop(self, grace: float = 5.0) -> None:
        """Stop reading, finish queued deliveries (up to ``grace`` s) and store the position."""
        await cancel_and_wait(self._task)
        lanes = list(self._lanes.values())
        if lanes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(lane.queue.join() for lane in lanes)), timeout=grace
                )
        for lane in lanes:
            await cancel_and_wait(lane.task)
        await cancel_and_wait(self._saver)
        try:
            await asyncio.wait_for(self._save(), timeout=5.0)
        except Exception as exc:  # NATS gone: the replies after the stored position come again
            log.warning("could not store the reply-router position at stop: %r", exc)

    async def _read(self, from_seq: int) -> None:
        try:
            await self._read_loop(from_seq)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the reply router stopped reading (position %s)", self.position)
            raise

    async def _read_loop(self, from_seq: int) -> None:
        async for seq, env in self.bus.tail(REPLIES_FILTER, from_seq):
            self._read_seq = seq
            adapter = self._adapters.get(env.conversation.channel)
            if adapter is None:
                self._dirty.set()
                continue
            try:
                reply = env.payload_as(Reply)
            except ValidationError:
                log.warning("reply at seq %s does not validate; skipped", seq)
                self._dirty.set()
                continue
            lane = self._lanes.get(env.conversation.channel)
            if lane is None:
                lane = self._lanes[env.conversation.channel] = _Lane(
                    env.conversation.channel, adapter, self
                )
            self._inflight.add(seq)
            lane.queue.put_nowait(ObservedReply(seq, env, reply))

    def _delivered(self, seq: int) -> None:
        self._inflight.discard(seq)
        self.delivered += 1
        self._dirty.set()

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._save()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not store the reply-router cursor; will retry", exc_info=True)
                await asyncio.sleep(0.5)
                self._dirty.set()
                continue
            if self._save_interval > 0:
                await asyncio.sleep(self._save_interval)

    async def _save(self) -> None:
        position = self.position
        if position > self._saved_seq and self._kv is not None:
            await self._kv.put(self.name, str(position).encode())
            self._saved_seq = position
