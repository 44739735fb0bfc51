"""The two streams' configurations and their idempotent creation.

A second start with the same configuration changes nothing; an existing stream or consumer with
a conflicting configuration is reported (``StreamConfigConflict``), never silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from events import subjects
from events.errors import StreamConfigConflict


@dataclass(frozen=True)
class BusLimits:
    """Tunable limits of the streams and service consumers."""

    event_max_age_seconds: float = 30 * 24 * 3600.0
    event_max_bytes: int = -1
    duplicate_window_seconds: float = subjects.DUPLICATE_WINDOW_SECONDS
    max_deliver: int = 4
    backoff_seconds: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    ack_wait_seconds: float = 30.0
    max_ack_pending: int = 1000


def stream_configs(limits: BusLimits) -> list[StreamConfig]:
    """Configurations of ``FD_INTENTS`` (work queue) and ``FD_EVENTS`` (the ordered bus)."""
    return [
        StreamConfig(
            name=subjects.INTENT_STREAM,
            description="Frontdoor intents: user requests for backend services (work queue)",
            subjects=[subjects.ALL_INTENTS],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            duplicate_window=limits.duplicate_window_seconds,
            max_age=7 * 24 * 3600.0,
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
        ),
    ]


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


_STREAM_FIELDS = ("subjects", "retention", "storage", "duplicate_window", "max_age")
_CONSUMER_FIELDS = ("filter_subject", "ack_policy", "max_deliver", "backoff")


def _diff(have: object, want: object, fields: tuple[str, ...]) -> dict[str, tuple[object, object]]:
    out: dict[str, tuple[object, object]] = {}
    for name in fields:
        a, b = getattr(have, name, None), getattr(want, name, None)
        if isinstance(a, float) or isinstance(b, float):
            if abs(float(a or 0) - float(b or 0)) > 1e-3:
                out[name] = (a, b)
        elif a != b:
            out[name] = (a, b)
    return out


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> bool:
    """Create the stream if missing; return True if created. Raise on a conflicting config."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
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


async def describe_streams(js: JetStreamContext, limits: BusLimits) -> dict[str, str]:
    """For ``frontdoor doctor``: each stream's state as one line (ok / missing / conflict)."""
    report: dict[str, str] = {}
    for config in stream_configs(limits):
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
