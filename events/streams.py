"""Where Frontdoor keeps things in JetStream: the two streams, the KV buckets and object stores,
their limits and replicas, and their idempotent creation.

Every stream, bucket and object store has explicit limits (bytes, message size, age or TTL), so
no part of Frontdoor can fill the server's store and stop every publish; what happens when one
is reached is in docs/spine.md. Replicas: ``FRONTDOOR_NATS_REPLICAS`` when set, else 3 when the
server belongs to a cluster of three or more nodes (pointing ``NATS_URL`` at a cluster is
enough), else 1.

A second start with the same configuration changes nothing; an existing stream, bucket or
consumer with a different configuration (limits and replicas included) is reported
(``StreamConfigConflict``), never silently overwritten: ``frontdoor doctor --apply`` updates what
JetStream can change in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError, ServerError

from events import subjects
from events.errors import StoreTooSmall, StreamConfigConflict

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
DAY = 24 * 3600.0
#: Environment variable that fixes the number of replicas (1, 3 or 5).
REPLICAS_ENV = "FRONTDOOR_NATS_REPLICAS"


@dataclass(frozen=True)
class BucketSpec:
    """Limits of a KV bucket or object store (``ttl``: seconds since an entry's last write)."""

    max_bytes: int
    ttl: float | None = None
    history: int = 1
    max_value_size: int = -1


#: Every KV bucket, with its limits. JetStream reserves each stream's ``max_bytes`` in its store:
#: with the streams' defaults, everything together reserves about 8 GiB (the deploy config's
#: server allows 10 GB). (a caller may give a shorter TTL of its own setting).
BUCKETS: dict[str, BucketSpec] = {
    # dialogue state of one conversation: forgotten after 30 days of silence
    subjects.CONVERSATIONS_BUCKET: BucketSpec(512 * MIB, ttl=30 * DAY, max_value_size=256 * KIB),
    subjects.CURSORS_BUCKET: BucketSpec(16 * MIB),
    subjects.SLACK_SEEN_BUCKET: BucketSpec(64 * MIB, ttl=DAY),
    subjects.SLACK_THREADS_BUCKET: BucketSpec(64 * MIB, ttl=DAY),
    subjects.DELIVERED_BUCKET: BucketSpec(256 * MIB, ttl=DAY),
    subjects.HANDOFFS_BUCKET: BucketSpec(64 * MIB, ttl=90 * DAY, max_value_size=64 * KIB),
    subjects.MODELS_POINTER_BUCKET: BucketSpec(16 * MIB, history=10),
    # rate-limit counters: a key outlives its longest window (1 h) and the one before it
    subjects.LIMITS_BUCKET: BucketSpec(128 * MIB, ttl=2 * 3600.0, max_value_size=256),
    # the agent workspace's saved replies (a few small keys, kept until changed)
    subjects.WORKSPACE_BUCKET: BucketSpec(8 * MIB, history=5, max_value_size=256 * KIB),
    # agent sessions signed out early: kept as long as a session can last
    subjects.AGENT_SIGNOUTS_BUCKET: BucketSpec(16 * MIB, ttl=DAY, max_value_size=64),
    # where each ticket's notices go: kept 180 days after the ticket was opened
    subjects.TICKET_CONVERSATIONS_BUCKET: BucketSpec(
        64 * MIB, ttl=180 * DAY, max_value_size=4 * KIB
    ),
}
#: Every object store, with its limits.
OBJECT_STORES: dict[str, BucketSpec] = {
    subjects.MODELS_BUCKET: BucketSpec(2 * GIB),
    subjects.CHARTS_BUCKET: BucketSpec(256 * MIB, ttl=7 * DAY),
}


@dataclass(frozen=True)
class BusLimits:
    """Tunable limits of the streams and service consumers.

    ``replicas``: ``None`` decides from the environment and the server (see the module's doc).
    """

    event_max_age_seconds: float = 30 * DAY
    event_max_bytes: int = 4 * GIB
    event_max_msg_size: int = 1 * MIB
    intent_max_age_seconds: float = 7 * DAY
    intent_max_bytes: int = 512 * MIB
    dead_max_age_seconds: float = 30 * DAY
    dead_max_bytes: int = 256 * MIB
    duplicate_window_seconds: float = subjects.DUPLICATE_WINDOW_SECONDS
    max_deliver: int = 4
    backoff_seconds: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    #: an instance that dies mid-intent gives it back after this long (running handlers send
    #: in-progress acks every third of it)
    ack_wait_seconds: float = 10.0
    #: the longest a handler may run before it counts as failed (retried, then given up on)
    handler_timeout_seconds: float = 60.0
    max_ack_pending: int = 1000
    replicas: int | None = None
    buckets: dict[str, BucketSpec] = field(default_factory=lambda: dict(BUCKETS))
    object_stores: dict[str, BucketSpec] = field(default_factory=lambda: dict(OBJECT_STORES))


def choose_replicas(configured: int | None, cluster_size: int) -> int:
    """Replicas for ``cluster_size`` servers: ``configured`` (or ``$FRONTDOOR_NATS_REPLICAS``)
    when given, else 3 on a cluster of 3+ nodes, else 1. Never more than the cluster has."""
    wanted = configured
    if wanted is None and os.environ.get(REPLICAS_ENV, "").strip():
        try:
            wanted = int(os.environ[REPLICAS_ENV])
        except ValueError:
            raise ValueError(f"{REPLICAS_ENV} must be 1, 3 or 5") from None
    if wanted is None:
        return 3 if cluster_size >= 3 else 1
    if wanted not in (1, 3, 5):
        raise ValueError(f"{REPLICAS_ENV} must be 1, 3 or 5, not {wanted}")
    return wanted


def stream_configs(limits: BusLimits, replicas: int = 1) -> list[StreamConfig]:
    """Configurations of ``FD_INTENTS`` (work queue), ``FD_EVENTS`` (the ordered bus) and
    ``FD_DEAD`` (dead letters).

    Full ``FD_INTENTS`` refuses new intents (the user gets a clear error) rather than dropping
    waiting ones; full ``FD_EVENTS`` drops its oldest events, so publishing never stops.
    """
    return [
        StreamConfig(
            name=subjects.INTENT_STREAM,
            description="Frontdoor intents: user requests for backend services (work queue)",
            subjects=[subjects.ALL_INTENTS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            duplicate_window=limits.duplicate_window_seconds,
            max_age=limits.intent_max_age_seconds,
            max_bytes=limits.intent_max_bytes,
            max_msg_size=limits.event_max_msg_size,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=subjects.EVENT_STREAM,
            description="Frontdoor ordered event bus: replies, domain and conversation events",
            subjects=[subjects.ALL_EVENTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=limits.duplicate_window_seconds,
            max_age=limits.event_max_age_seconds,
            max_bytes=limits.event_max_bytes,
            max_msg_size=limits.event_max_msg_size,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=subjects.DEAD_STREAM,
            description="Frontdoor dead letters: intents given up on (frontdoor dead list)",
            subjects=[subjects.ALL_DEAD],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=limits.duplicate_window_seconds,
            max_age=limits.dead_max_age_seconds,
            max_bytes=limits.dead_max_bytes,
            max_msg_size=limits.event_max_msg_size,
            num_replicas=replicas,
        ),
    ]


def bucket_config(
    bucket: str, spec: BucketSpec, replicas: int, ttl: float | None = None
) -> KeyValueConfig:
    """The KV configuration of ``bucket`` (a caller's shorter ``ttl`` wins)."""
    return KeyValueConfig(
        bucket=bucket,
        history=spec.history,
        ttl=_shorter(spec.ttl, ttl),
        max_bytes=spec.max_bytes,
        max_value_size=spec.max_value_size,
        storage=StorageType.FILE,
        replicas=replicas,
    )


def object_store_config(bucket: str, spec: BucketSpec, replicas: int) -> ObjectStoreConfig:
    """The configuration of the object store ``bucket``."""
    return ObjectStoreConfig(
        bucket=bucket,
        ttl=spec.ttl,
        max_bytes=spec.max_bytes,
        storage=StorageType.FILE,
        replicas=replicas,
    )


def _shorter(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def service_consumer_config(service: str, limits: BusLimits) -> ConsumerConfig:
    """The durable pull consumer every instance of ``service`` shares.

    No consumer-level ``backoff``: JetStream would take its first step as the ack deadline of
    the first delivery and redeliver a slow handler while it still runs. Failed deliveries are
    nak'ed by the runtime with ``limits.backoff_seconds`` as delays instead; a worker that dies
    mid-message gets it redelivered after ``ack_wait`` (the runtime keeps long handlers alive
    with in-progress acks).
    """
    # ``name`` as well as ``durable_name``: nats-py then creates it on
    # ``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``, a subject that names the filter, so
    # NATS permissions can let a service create only its own consumer with its own filter.
    return ConsumerConfig(
        name=subjects.service_consumer(service),
        durable_name=subjects.service_consumer(service),
        description=f"Intents for the {service} service",
        filter_subject=subjects.service_intents_filter(service),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=limits.ack_wait_seconds,
        max_deliver=limits.max_deliver,
        backoff=None,
        max_ack_pending=limits.max_ack_pending,
    )


def follower_consumer_config(
    name: str,
    filter_subject: str,
    *,
    ordered: bool,
    max_deliver: int,
    ack_wait: float,
) -> ConsumerConfig:
    """A durable pull consumer on ``FD_EVENTS`` that every replica of a component shares
    (``Bus.follow``): each event goes to one of them, the position is kept by the server.

    Created at the current end of the stream (``DeliverPolicy.NEW``): a new follower does not
    act on the past. ``ordered``: one event in flight across all replicas (in stream order,
    a failed one is retried before the next); otherwise up to 64 at once.
    """
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"Gateway follower {name}",
        filter_subject=filter_subject,
        deliver_policy=DeliverPolicy.NEW,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        backoff=None,
        max_ack_pending=1 if ordered else 64,
    )


_STREAM_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "discard",
    "duplicate_window",
    "max_age",
    "max_bytes",
    "max_msg_size",
    "num_replicas",
)
#: What a KV bucket's or object store's underlying stream must match.
_BUCKET_FIELDS = ("max_age", "max_bytes", "max_msg_size", "max_msgs_per_subject", "num_replicas")
_CONSUMER_FIELDS = ("filter_subject", "ack_policy", "max_deliver", "backoff")


def _diff(have: object, want: object, fields: tuple[str, ...]) -> dict[str, tuple[object, object]]:
    out: dict[str, tuple[object, object]] = {}
    for name in fields:
        a, b = getattr(have, name, None), getattr(want, name, None)
        if name in _UNLIMITED_IS_DEFAULT:
            a, b = _unlimited(a), _unlimited(b)
        if isinstance(a, float) or isinstance(b, float):
            if abs(float(a or 0) - float(b or 0)) > 1e-3:
                out[name] = (a, b)
        elif a != b:
            out[name] = (a, b)
    return out


#: Fields where "not set" (None, 0, -1) all mean the server's default (unlimited / 1).
_UNLIMITED_IS_DEFAULT = {
    "max_bytes",
    "max_msg_size",
    "max_age",
    "num_replicas",
    "max_msgs_per_subject",
}


def _unlimited(value: object) -> object:
    if value in (None, -1, 0, 0.0):
        return None
    return value


#: JetStream's error code when a stream's ``max_bytes`` cannot be reserved in the store.
_NO_STORAGE = 10047


@contextlib.contextmanager
def reserving(name: str, max_bytes: int | None) -> Iterator[None]:
    """Turn JetStream's "insufficient storage" into a ``StoreTooSmall`` that says what to do."""
    try:
        yield
    except ServerError as exc:
        if getattr(exc, "err_code", None) != _NO_STORAGE:
            raise
        raise StoreTooSmall(
            f"NATS cannot reserve {max_bytes} bytes for {name}: its JetStream store is too small "
            "(raise max_file_store in the server's config, or free disk space; docs/spine.md "
            "lists what each stream and bucket reserves)"
        ) from exc


async def wait_for_leader(js: JetStreamContext, stream: str, timeout: float = 15.0) -> None:
    """Until the replicated ``stream`` has elected a leader (a stream just created on a
    cluster refuses its first writes until then); at once on a single server."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await js.stream_info(stream)
        if info.cluster is None or info.cluster.leader:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"stream {stream} has no leader after {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> bool:
    """Create the stream if missing; return True if created. Raise on a conflicting config."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        with reserving(f"stream {config.name}", config.max_bytes):
            await js.add_stream(config)
        if (config.num_replicas or 1) > 1:
            await wait_for_leader(js, config.name)
        return True
    differences = _diff(info.config, config, _STREAM_FIELDS)
    if differences:
        raise StreamConfigConflict(f"stream {config.name}", differences)
    return False


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> bool:
    """Create the durable consumer if missing; return True if created. Raise on a conflict."""
    assert config.durable_name is not None
    try:
        info = await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        await js.add_consumer(stream, config)
        return True
    differences = _diff(info.config, config, _CONSUMER_FIELDS)
    if differences:
        raise StreamConfigConflict(f"consumer {stream}/{config.durable_name}", differences)
    return False


def bucket_stream_config(
    spec: BucketSpec, replicas: int, ttl: float | None = None, *, objects: bool = False
) -> object:
    """What the stream behind a KV bucket (``KV_<name>``) or an object store (``OBJ_<name>``)
    must look like."""
    return _Wanted(
        max_age=_shorter(spec.ttl, ttl),
        max_bytes=spec.max_bytes,
        max_msg_size=None if objects else spec.max_value_size,
        max_msgs_per_subject=None if objects else spec.history,
        num_replicas=replicas,
    )


@dataclass(frozen=True)
class _Wanted:
    max_age: float | None
    max_bytes: int
    max_msg_size: int | None
    max_msgs_per_subject: int | None
    num_replicas: int


async def check_bucket_stream(js: JetStreamContext, stream: str, wanted: object) -> None:
    """Raise ``StreamConfigConflict`` when the stream of a bucket differs from ``wanted``."""
    info = await js.stream_info(stream)
    differences = _diff(info.config, wanted, _BUCKET_FIELDS)
    if differences:
        raise StreamConfigConflict(f"bucket stream {stream}", differences)


async def missing_streams(js: JetStreamContext) -> list[str]:
    """The names of Frontdoor's streams that do not exist (``[]`` when both do)."""
    missing: list[str] = []
    for config in stream_configs(BusLimits()):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            missing.append(config.name)
    return missing


async def describe_streams(
    js: JetStreamContext, limits: BusLimits, replicas: int = 1
) -> dict[str, str]:
    """For ``frontdoor doctor``: each stream's state as one line (ok / missing / conflict)."""
    report: dict[str, str] = {}
    for config in stream_configs(limits, replicas):
        assert config.name is not None
        try:
            info = await js.stream_info(config.name)
        except NotFoundError:
            report[config.name] = "missing (created at the first `frontdoor up`)"
            continue
        differences = _diff(info.config, config, _STREAM_FIELDS)
        if differences:
            report[config.name] = "CONFLICT: " + str(StreamConfigConflict(config.name, differences))
        else:
            state = info.state
            report[config.name] = (
                f"ok: {state.messages} messages, last sequence {state.last_seq}, "
                f"{state.consumer_count} consumers"
            )
    return report
