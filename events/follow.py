"""Durable followers of the event bus, shared by the replicas of a component (``Bus.follow``).

A follower is a durable pull consumer on ``FD_EVENTS``: JetStream hands each matching event to
one replica, keeps the position across restarts and redelivers an event whose handler failed
(after a delay) or whose replica died (after ``ack_wait``). So with several replicas each event
is acted on once, and none is lost while the component is down. The one case left is a replica
that dies after acting and before its ack: the event comes again, so handlers derive the ids of
what they publish from the event id (the bus keeps one copy).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from events.envelope import Envelope
from events.worker import Delivery, DeliveryHandler

log = logging.getLogger("frontdoor.follow")

#: ``(stream sequence, event)``; raise to have the event retried.
EventHandler = Callable[[int, Envelope], Awaitable[None]]


@dataclass(frozen=True)
class FollowPolicy:
    """How a follower takes its events.

    ``ordered``: one event in flight across all replicas, in stream order (a failed one is
    retried before the next); otherwise up to ``concurrency`` per replica, in any order.
    ``attempts``: deliveries of a failing event before it is given up on (logged once);
    ``-1`` retries forever. ``retry_delays``: the wait before each retry (the last one repeats).
    """

    ordered: bool = True
    attempts: int = -1
    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)
    ack_wait: float = 30.0
    concurrency: int = 1

    def delay(self, failed_deliveries: int) -> float:
        """Seconds to wait before retrying after the ``failed_deliveries``-th failure."""
        index = min(max(failed_deliveries, 1), len(self.retry_delays)) - 1
        return self.retry_delays[index]


def delivery_handler(
    name: str,
    handler: EventHandler,
    policy: FollowPolicy,
    subject_of: Callable[[Envelope], str],
) -> DeliveryHandler:
    """Wrap ``handler`` for a pull loop: ack on success, retry later on failure, give up (one
    log line) after ``policy.attempts``; malformed or forged events are dropped.

    ``subject_of`` is the subject an envelope must have been stored under: NATS permissions
    hold each publisher to its subjects, so an envelope under another subject was forged.
    """

    async def on_delivery(delivery: Delivery) -> None:
        env = delivery.envelope
        if env is None or delivery.msg.subject != subject_of(env):
            log.warning(
                "follower %s: dropping malformed or forged event at sequence %s",
                name,
                delivery.stream_seq,
            )
            await delivery.term()
            return
        try:
            await handler(delivery.stream_seq, env)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt = delivery.num_delivered
            if 0 < policy.attempts <= attempt:
                log.error(
                    "follower %s gave up on %s %s (sequence %s) after %s attempts: %s",
                    name,
                    env.type,
                    env.id,
                    delivery.stream_seq,
                    attempt,
                    _describe(exc),
                )
                await delivery.term()
                return
            # Retried quietly when it will give up (and say so) later; a follower that never
            # gives up says once per event that it is stuck.
            level = logging.WARNING if policy.attempts < 0 and attempt == 1 else logging.DEBUG
            log.log(
                level,
                "follower %s: %s %s failed (attempt %s), retrying: %s",
                name,
                env.type,
                env.id,
                attempt,
                _describe(exc),
            )
            await delivery.nak(policy.delay(attempt))
            return
        await delivery.ack_sync()

    return on_delivery


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
