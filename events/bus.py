"""The bus: Frontdoor's only door to NATS and JetStream.

- ``publish(envelope) -> seq``: intents go to ``FD_INTENTS``, everything else to ``FD_EVENTS``;
  the envelope id is the ``Nats-Msg-Id``, so publishing twice stores once. Publishes are retried
  across a reconnect until acknowledged or ``publish_timeout`` passes.
- ``tail(filter, from_seq)``: an ordered, resumable read of ``FD_EVENTS``.
- ``work(service, handler)``: the service's durable pull consumer, explicit ack/nak/term.
- ``follow(name, filter, handler)``: a durable follower of ``FD_EVENTS`` shared by replicas.
- ``key_value`` / ``object_store`` / ``add_micro_service``: the other NATS facilities we use.

Every connection uses the inbox prefix ``_INBOX.<user>`` of the NATS user it logs in as (see
``events.compartments``): replies, JetStream acks and deliveries all arrive on ``nc.new_inbox()``
subjects under it, the only inboxes that user may subscribe to.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from pydantic import ValidationError

from events import subjects
from events.compartments import inbox_prefix as inbox_prefix_of
from events.credentials import url_user
from events.envelope import Envelope
from events.errors import BusError, BusUnavailable, PublishTimeout, StreamsMissing
from events.follow import EventHandler, FollowPolicy, delivery_handler
from events.streams import (
    BusLimits,
    bucket_config,
    bucket_stream_config,
    check_bucket_stream,
    choose_replicas,
    ensure_consumer,
    ensure_stream,
    follower_consumer_config,
    missing_streams,
    object_store_config,
    reserving,
    service_consumer_config,
    stream_configs,
    wait_for_leader,
)
from events.wire import PublishAcks, StoredAck, delivery_fields, next_msg
from events.worker import Delivery, DeliveryHandler, PullLoop, Worker

__all__ = ["Bus", "Delivery", "DeliveryHandler", "Worker", "subject_for"]

log = logging.getLogger("frontdoor.bus")

_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    asyncio.TimeoutError,
    OSError,
)


def _refused_credentials(exc: Exception) -> bool:
    """NATS refused the connection's user and password (or their absence)."""
    return isinstance(exc, nats.errors.AuthorizationError) or (
        "authorization violation" in str(exc).lower()
    )


def subject_for(envelope: Envelope) -> str:
    """The subject an envelope is published on (derived from its type and conversation)."""
    intent = _intent_subject(envelope.type)
    if intent is not None:
        return intent
    conv = envelope.conversation
    return _event_subject(conv.channel, conv.id, envelope.type)


# Subjects repeat (one per intent type, one per conversation and type): compute each once.
@functools.lru_cache(maxsize=1024)
def _intent_subject(envelope_type: str) -> str | None:
    intent = subjects.parse_intent_type(envelope_type)
    return subjects.intent_subject(*intent) if intent is not None else None


@functools.lru_cache(maxsize=8192)
def _event_subject(channel: str, conversation_id: str, envelope_type: str) -> str:
    return subjects.event_subject(channel, conversation_id, envelope_type)


def _stored_subject(envelope: Envelope) -> str:
    """The subject an event must have been stored under: that of its type and conversation."""
    conv = envelope.conversation
    try:
        return _event_subject(conv.channel, conv.id, envelope.type)
    except ValueError:  # e.g. an empty conversation id: no subject fits
        return ""


class Bus:
    """A connection to NATS with Frontdoor's streams. Create with ``await Bus.connect(url)``."""

    def __init__(self, nc: NatsClient, limits: BusLimits, publish_timeout: float) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=5.0)
        self._acks = PublishAcks(nc)
        self.limits = limits
        self.publish_timeout = publish_timeout
        #: give up after this many seconds *while disconnected* (``BusUnavailable``) instead of
        #: retrying for ``publish_timeout``: the gateway answers a 503 fast in an outage
        self.unavailable_after: float | None = None
        #: replicas of every stream, bucket and object store this bus creates
        self.replicas = choose_replicas(limits.replicas, self.cluster_size)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str = "frontdoor",
        limits: BusLimits | None = None,
        connect_timeout: float = 10.0,
        publish_timeout: float = 30.0,
        ensure: bool = True,
        inbox_prefix: str | None = None,
    ) -> Bus:
        """Connect (reconnecting forever after a loss) and, by default, ensure the streams.

        ``inbox_prefix`` defaults to ``_INBOX.<user>`` for a URL with ``user:password@`` (the
        only inboxes a Frontdoor NATS user may subscribe to), else NATS's own ``_INBOX``.
        Services pass ``ensure=False`` (they may not create streams) and call
        ``require_streams``. Refused credentials fail at once with ``BusUnavailable``.
        """
        refused: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

        async def on_error(exc: Exception) -> None:
            if _refused_credentials(exc) and not refused.done():
                refused.set_result(exc)
            log.warning("nats error: %s", exc)

        async def on_disconnect() -> None:
            if not (nc.is_closed or nc.is_draining):  # our own close() is not news
                log.warning("disconnected from NATS, reconnecting")

        async def on_reconnect() -> None:
            log.info("reconnected to NATS")

        if inbox_prefix is None:
            user = url_user(url)
            inbox_prefix = inbox_prefix_of(user) if user else "_INBOX"
        shown = re.sub(r"//[^@/,]*@", "//***@", url)  # never log credentials
        opening = asyncio.ensure_future(
            cls._open(
                url, name, connect_timeout, inbox_prefix, on_error, on_disconnect, on_reconnect
            )
        )
        try:
            # nats-py would retry an unreachable first server forever: bound the first connect.
            waiting: set[asyncio.Future[Any]] = {opening, refused}
            done, _ = await asyncio.wait(
                waiting,
                timeout=connect_timeout + 1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if opening in done:
                nc = opening.result()
            elif refused in done:
                raise BusUnavailable(
                    f"NATS at {shown} refused the connection: {refused.result()} (check the user "
                    "and password in the URL)"
                )
            else:
                raise TimeoutError
        except (OSError, nats.errors.NoServersError, TimeoutError) as exc:
            raise BusUnavailable(
                f"cannot reach NATS at {shown} within {connect_timeout:g}s: "
                f"{str(exc) or type(exc).__name__}"
            ) from exc
        finally:
            if not opening.done():
                opening.cancel()
                with contextlib.suppress(BaseException):
                    await opening
        bus = cls(nc, limits or BusLimits(), publish_timeout)
        await bus._acks.start()
        if ensure:
            await bus.ensure_streams()
        return bus

    @staticmethod
    async def _open(
        url: str,
        name: str,
        connect_timeout: float,
        inbox_prefix: str,
        on_error: Callable[[Exception], Awaitable[None]],
        on_disconnect: Callable[[], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> NatsClient:
        return await nats.connect(
            servers=[u.strip() for u in url.split(",") if u.strip()],
            name=name,
            connect_timeout=connect_timeout,
            inbox_prefix=inbox_prefix,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            pending_size=64 * 1024 * 1024,
        )

    @property
    def nc(self) -> NatsClient:
        """The raw nats-py client (for code inside ``events`` only)."""
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        """The raw JetStream context (for code inside ``events`` only)."""
        return self._js

    @property
    def cluster_size(self) -> int:
        """How many servers the connection knows (the cluster's, as the server advertises)."""
        return max(1, len(self._nc.servers))

    @property
    def connected(self) -> bool:
        """True while connected to a server."""
        return bool(self._nc.is_connected)

    async def close(self) -> None:
        """Flush and close the connection."""
        if not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.drain()
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def ensure_streams(self) -> None:
        """Create ``FD_INTENTS`` and ``FD_EVENTS`` if missing; raise on conflicting configs."""
        for config in stream_configs(self.limits, self.replicas):

            async def create(c: StreamConfig = config) -> bool:
                return await ensure_stream(self._js, c)

            await self._retry(create, "create stream")

    async def require_streams(self, wait: float = 0.0) -> None:
        """Check that ``FD_INTENTS`` and ``FD_EVENTS`` exist, waiting up to ``wait`` s for them.

        For components that may not create them (the services): raise ``StreamsMissing``
        naming the missing streams and who creates them.
        """
        deadline = time.monotonic() + wait
        told = False
        while True:
            missing = await self._retry(lambda: missing_streams(self._js), "stream info")
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise StreamsMissing(missing)
            if not told:
                log.warning(
                    "JetStream streams %s do not exist yet; waiting up to %gs for the gateway to "
                    "create them",
                    ", ".join(missing),
                    wait,
                )
                told = True
            await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))

    async def ensure_service_consumer(self, service: str) -> str:
        """Create the durable consumer of ``service`` if missing; return its name."""
        config = service_consumer_config(service, self.limits)
        await self._retry(
            lambda: ensure_consumer(self._js, subjects.INTENT_STREAM, config), "create consumer"
        )
        assert config.durable_name is not None
        return config.durable_name

    async def _retry(self, op: Callable[[], Awaitable[Any]], what: str) -> Any:
        started = time.monotonic()
        deadline = started + self.publish_timeout
        delay = 0.05
        while True:
            try:
                return await op()
            except _RETRYABLE as exc:
                now = time.monotonic()
                if (
                    self.unavailable_after is not None
                    and not self._nc.is_connected
                    and now - started >= self.unavailable_after
                ):
                    raise BusUnavailable(
                        f"{what}: NATS has been unreachable for {now - started:.1f}s"
                    ) from exc
                if now + delay > deadline:
                    raise PublishTimeout(f"{what}: NATS did not answer in time ({exc!r})") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- publishing -------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> int:
        """Publish and wait for JetStream's ack; return the stream sequence.

        Safe to retry: the envelope id is the message id, so a duplicate inside the duplicate
        window returns the sequence of the original instead of storing it again.
        """
        seq, _ = await self.publish_checked(envelope)
        return seq

    async def publish_checked(self, envelope: Envelope) -> tuple[int, bool]:
        """Like ``publish``, and also say whether JetStream already held this envelope id.

        ``(seq, True)`` means a duplicate inside the duplicate window (e.g. a channel retry):
        the caller must not process it again.
        """
        subject = subject_for(envelope)
        data = envelope.to_bytes()
        headers = {"Nats-Msg-Id": str(envelope.id)}

        async def once() -> tuple[int, bool]:
            ack = await self._acks.publish(subject, data, headers, timeout=2.0)
            return ack.seq, ack.duplicate

        seq, duplicate = await self._retry(once, f"publish {envelope.type}")
        return int(seq), bool(duplicate)

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> int:
        """Publish bytes to a stream subject (``headers`` must carry a ``Nats-Msg-Id``) and
        wait for the ack, retried like ``publish``; return the sequence."""

        async def once() -> int:
            ack = await self._acks.publish(subject, data, headers, timeout=2.0)
            return int(ack.seq)

        return int(await self._retry(once, f"publish {subject}"))

    async def subscribe_core(
        self, subject: str, handler: Callable[[bytes], Awaitable[None]]
    ) -> Any:
        """A core NATS subscription (advisories); ``handler`` gets each message's data.
        Returns the subscription (``await sub.unsubscribe()``)."""

        async def on_msg(msg: Any) -> None:
            await handler(bytes(msg.data))

        return await self._nc.subscribe(subject, cb=on_msg)

    async def publish_core(self, subject: str, data: bytes) -> None:
        """Publish on core NATS (not stored; ephemeral signals such as typing). Best effort:
        nothing is sent while disconnected."""
        if self._nc.is_connected:
            await self._nc.publish(subject, data)

    async def publish_async(self, envelope: Envelope) -> asyncio.Future[StoredAck]:
        """Send without waiting; the returned future resolves to the stream's ack (``.seq``,
        ``.duplicate``) or fails after ``publish_timeout``. For bulk work: no retry across a
        reconnect here (``publish`` retries; publishing the same envelope again is harmless)."""
        return await self._acks.publish_nowait(
            subject_for(envelope),
            envelope.to_bytes(),
            {"Nats-Msg-Id": str(envelope.id)},
            timeout=self.publish_timeout,
        )

    async def last_sequence(self, stream: str = subjects.EVENT_STREAM) -> int:
        """The last sequence stored in ``stream``."""
        info = await self._retry(lambda: self._js.stream_info(stream), "stream info")
        return int(info.state.last_seq)

    async def purge_events(self, filter_subject: str) -> None:
        """Remove every stored event of ``FD_EVENTS`` whose subject matches ``filter_subject``
        (e.g. one conversation's ``fd.event.<channel>.<conversation>.>``, for erasure)."""
        done = await self._retry(
            lambda: self._js.purge_stream(subjects.EVENT_STREAM, subject=filter_subject),
            "purge events",
        )
        if not done:
            raise BusError(f"NATS did not purge {filter_subject} from {subjects.EVENT_STREAM}")

    # -- ordered reading --------------------------------------------------------------------

    async def tail(
        self,
        filter_subject: str = subjects.ALL_EVENTS,
        from_seq: int | None = 1,
        *,
        stop_at_end: bool = False,
    ) -> AsyncIterator[tuple[int, Envelope]]:
        """Read ``FD_EVENTS`` in stream order from ``from_seq`` (``None``: only new events).

        Yields ``(sequence, envelope)``. Survives reconnects and server restarts by resuming
        after the last sequence it yielded, so nothing is skipped and nothing repeats. With
        ``stop_at_end`` it ends once it has caught up with the last event that matches
        ``filter_subject`` (a replay); events published meanwhile may be included.
        """
        next_seq = from_seq
        if stop_at_end and next_seq is None:
            return  # "only new events" until the end: nothing by definition
        while True:
            if next_seq is None:
                config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
            else:
                config = ConsumerConfig(
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(next_seq, 1)
                )
            reconnects = self._nc.stats["reconnects"]
            try:
                sub = await self._js.subscribe(
                    filter_subject,
                    stream=subjects.EVENT_STREAM,
                    ordered_consumer=True,
                    idle_heartbeat=2.0,
                    config=config,
                )
            except _RETRYABLE:
                await asyncio.sleep(0.25)
                continue
            try:
                if stop_at_end:
                    info = await sub.consumer_info()
                    delivered = info.delivered.consumer_seq if info.delivered else 0
                    if not info.num_pending and not delivered:
                        return  # nothing (more) matches and nothing on its way: caught up
                while True:
                    try:
                        msg = await next_msg(sub, 2.0)
                    except nats.errors.TimeoutError:
                        # A reconnect may have lost the server-side consumer (a restarted
                        # server forgets it): start a fresh one after the last yielded event.
                        if self._nc.stats["reconnects"] != reconnects or not self._nc.is_connected:
                            raise ConnectionError("reconnected") from None
                        continue
                    meta = delivery_fields(msg)
                    if meta is None:  # nats-py already filters control messages
                        log.warning("skipping a non-JetStream message on %s", filter_subject)
                        continue
                    seq = meta.stream_seq
                    if next_seq is not None and seq < next_seq:
                        continue  # redelivered after a consumer reset: already yielded
                    next_seq = seq + 1
                    try:
                        envelope = Envelope.from_bytes(msg.data)
                    except ValidationError:
                        log.warning("skipping malformed event at sequence %s", seq)
                        envelope = None
                    if envelope is not None and msg.subject != _stored_subject(envelope):
                        # NATS permissions hold a publisher to its subjects (a service to the
                        # event types it owns): an envelope whose type or conversation is not
                        # its subject's was forged under an allowed subject. Never trusted.
                        log.warning(
                            "skipping event at sequence %s: its envelope (%s) does not match "
                            "its subject",
                            seq,
                            envelope.type[:64],
                        )
                        envelope = None
                    if envelope is not None:
                        yield seq, envelope
                    if stop_at_end and not meta.num_pending:
                        return
            except (*_RETRYABLE, ConnectionError, nats.errors.Error) as exc:
                log.info("tail %s interrupted (%r); resuming at %s", filter_subject, exc, next_seq)
                await asyncio.sleep(0.25)
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    # -- work queue ---------------------------------------------------------------------------

    async def work(
        self, service: str, handler: DeliveryHandler, *, concurrency: int = 16
    ) -> Worker:
        """Serve ``service``'s intents with ``handler`` (at most ``concurrency`` at once).

        Every instance of a service binds the same durable consumer, so they share the intents.
        """
        durable = await self.ensure_service_consumer(service)
        return self._pull(
            f"worker-{service}",
            Worker(service=service),
            stream=subjects.INTENT_STREAM,
            durable=durable,
            handler=handler,
            concurrency=concurrency,
            max_deliver=self.limits.max_deliver,
        )

    async def follow(
        self,
        name: str,
        filter_subject: str,
        handler: EventHandler,
        policy: FollowPolicy | None = None,
    ) -> Worker:
        """Follow ``FD_EVENTS`` (``filter_subject``) with the durable consumer ``name``, shared
        by every process that follows under that name: each event reaches ``handler`` in one of
        them, once it succeeds (see ``events.follow``). ``worker.stop()`` stops following; the
        position stays with the server. A new consumer starts at the end of the stream."""
        policy = policy or FollowPolicy()
        config = follower_consumer_config(
            name,
            filter_subject,
            ordered=policy.ordered,
            max_deliver=policy.attempts,
            ack_wait=policy.ack_wait,
        )
        await self._retry(
            lambda: ensure_consumer(self._js, subjects.EVENT_STREAM, config), "create consumer"
        )
        return self._pull(
            f"follow-{name}",
            Worker(service=name),
            stream=subjects.EVENT_STREAM,
            durable=name,
            handler=delivery_handler(name, handler, policy, _stored_subject),
            concurrency=policy.concurrency if not policy.ordered else 1,
            max_deliver=policy.attempts,
        )

    def _pull(
        self,
        task_name: str,
        worker: Worker,
        *,
        stream: str,
        durable: str,
        handler: DeliveryHandler,
        concurrency: int,
        max_deliver: int,
    ) -> Worker:
        """Start ``worker``'s pull loop on the durable consumer ``durable`` of ``stream``."""
        pull = PullLoop(
            self._nc,
            api_prefix=getattr(self._js, "_prefix", "$JS.API"),
            stream=stream,
            durable=durable,
            handler=handler,
            worker=worker,
            concurrency=concurrency,
            max_deliver=max_deliver,
        )
        worker._task = asyncio.create_task(pull.run(), name=task_name)
        return worker

    # -- other NATS facilities ------------------------------------------------------------

    async def key_value(self, bucket: str, *, ttl: float | None = None) -> KeyValue:
        """The KV bucket ``bucket`` (declared in ``events.streams.BUCKETS``), created on first
        use with its limits; an existing one with other limits is a ``StreamConfigConflict``.
        ``ttl`` (a setting of the caller) may shorten the bucket's TTL."""
        spec = self.limits.buckets[bucket]
        try:
            kv = await self._js.key_value(bucket)
        except (NotFoundError, nats.js.errors.BucketNotFoundError):
            kv = await self._js.create_key_value(bucket_config(bucket, spec, self.replicas, ttl))
            if self.replicas > 1:
                await wait_for_leader(self._js, f"KV_{bucket}")
            return kv
        await check_bucket_stream(
            self._js, f"KV_{bucket}", bucket_stream_config(spec, self.replicas, ttl)
        )
        return kv

    async def object_store(self, bucket: str) -> ObjectStore:
        """The object store ``bucket`` (declared in ``events.streams.OBJECT_STORES``), created
        on first use with its limits; an existing one with other limits is a conflict."""
        spec = self.limits.object_stores[bucket]
        try:
            store = await self._js.object_store(bucket)
        except (NotFoundError, nats.js.errors.BucketNotFoundError):
            with reserving(f"object store {bucket}", spec.max_bytes):
                store = await self._js.create_object_store(
                    bucket, object_store_config(bucket, spec, self.replicas)
                )
            if self.replicas > 1:
                await wait_for_leader(self._js, f"OBJ_{bucket}")
            return store
        await check_bucket_stream(
            self._js, f"OBJ_{bucket}", bucket_stream_config(spec, self.replicas, objects=True)
        )
        return store

    async def request(
        self,
        subject: str,
        data: bytes,
        timeout: float = 5.0,
        *,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """A core NATS request (e.g. to a micro service endpoint or ``$SRV.PING``)."""
        try:
            msg = await self._nc.request(subject, data, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError as exc:
            raise BusUnavailable(f"nobody answers on {subject}") from exc
        except nats.errors.TimeoutError as exc:
            raise BusUnavailable(f"no answer on {subject} within {timeout}s") from exc
        return bytes(msg.data)

    async def gather_replies(
        self, subject: str, data: bytes = b"", wait: float = 0.5
    ) -> list[bytes]:
        """Send to ``subject`` and collect every answer within ``wait`` s (``$SRV`` discovery)."""
        inbox = self._nc.new_inbox()
        answers: list[bytes] = []
        sub = await self._nc.subscribe(inbox)
        try:
            await self._nc.publish(subject, data, reply=inbox)
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await sub.next_msg(timeout=left)
                except nats.errors.TimeoutError:
                    break
                answers.append(bytes(msg.data))
        finally:
            await sub.unsubscribe()
        return answers
