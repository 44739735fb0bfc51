"""Slack threads the bot follows: messages in them are for the bot without a mention.

A thread becomes followed when the bot is mentioned in it (or in the message that starts it),
and each message for the bot refreshes it; after ``thread_follow_seconds`` without one it is
no longer followed (the KV bucket's TTL), and a mention starts it again. Kept in NATS KV, so
every front-door replica agrees and a restart forgets nothing.
"""

from __future__ import annotations

import logging

import nats.js.errors
from nats.js.kv import KeyValue

from bots.seen import kv_key
from events import subjects
from events.bus import Bus

log = logging.getLogger("frontdoor.slack.threads")


class FollowedThreads:
    """The threads the bot answers in without a mention."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, bus: Bus, follow_seconds: float) -> FollowedThreads:
        """The set in ``SLACK_THREADS_BUCKET`` (entries expire ``follow_seconds`` after their
        last refresh)."""
        return cls(await bus.key_value(subjects.SLACK_THREADS_BUCKET, ttl=follow_seconds))

    async def follow(self, channel: str, thread_ts: str) -> None:
        """Follow the thread (again) for the whole follow period from now."""
        try:
            await self._kv.put(kv_key(channel, thread_ts), b"1")
        except nats.js.errors.Error as exc:
            log.warning("cannot record Slack thread %s/%s as followed: %s", channel, thread_ts, exc)

    async def followed(self, channel: str, thread_ts: str) -> bool:
        """Whether messages in the thread are for the bot (False when the store is down)."""
        try:
            await self._kv.get(kv_key(channel, thread_ts))
        except nats.js.errors.KeyNotFoundError:
            return False
        except nats.js.errors.Error as exc:
            log.warning("cannot tell whether Slack thread %s is followed: %s", thread_ts, exc)
            return False
        return True
