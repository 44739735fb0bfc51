"""Take each Slack event once, across retries and front-door replicas (NATS KV, with a TTL).

Slack retries an event it thinks was not acknowledged (``X-Slack-Retry-Num``) for about five
minutes; a message that mentions the bot also arrives twice (``app_mention`` and ``message``).
``SeenSet.claim(key)`` atomically creates ``key`` in a KV bucket whose entries expire after the
dedup window: the first claimer wins, every later claim (another replica, a retry) is refused.
The turn's ``message.received`` envelope id is derived from the same key as well, so even a claim
lost to a KV outage cannot make the bus store a turn twice.
"""

from __future__ import annotations

import hashlib
import logging
import re

import nats.js.errors
from nats.js.kv import KeyValue

from events import subjects
from events.bus import Bus

log = logging.getLogger("frontdoor.slack.dedup")

_KV_SAFE = re.compile(r"[^A-Za-z0-9_=-]")


def kv_key(*parts: str) -> str:
    """A NATS KV key made of ``parts`` (each made safe; long ones hashed)."""
    safe = []
    for part in parts:
        if not part:
            safe.append("=")  # never produced by a non-empty part ('=' itself becomes '=3D')
            continue
        token = _KV_SAFE.sub(lambda m: f"={ord(m.group(0)):02X}", part)
        if len(token) > 120:
            token = hashlib.sha256(part.encode()).hexdigest()
        safe.append(token)
    return ".".join(safe)


class SeenSet:
    """An expiring set of already handled keys in NATS KV."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, bus: Bus, ttl_seconds: float) -> SeenSet:
        """The set in ``SLACK_SEEN_BUCKET`` (created with ``ttl_seconds`` on first use)."""
        return cls(await bus.key_value(subjects.SLACK_SEEN_BUCKET, ttl=ttl_seconds))

    async def claim(self, *parts: str) -> bool:
        """True the first time ``parts`` is claimed within the window, False afterwards."""
        key = kv_key(*parts)
        try:
            await self._kv.create(key, b"1")
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except nats.js.errors.Error as exc:
            # Fail open: the bus still drops the duplicate turn by its envelope id.
            log.warning("slack seen-set unavailable (%s); relying on the bus duplicate window", exc)
        return True
