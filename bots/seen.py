"""Take each thing once across retries and front-door replicas (NATS KV, with a TTL).

Used for Slack events and posts (bucket ``fd_slack_seen``) and for late REST replies
(``fd_delivered``). Slack retries an event it thinks was not acknowledged
(``X-Slack-Retry-Num``) for about five minutes; a message that mentions the bot also arrives
twice (``app_mention`` and ``message``).
``SeenSet.claim(key)`` atomically creates ``key`` in a KV bucket whose entries expire after the
dedup window: the first claimer wins, every later claim (another replica, a retry) is refused.
The turn's ``message.received`` envelope id is derived from the same key as well, so even a claim
lost to a KV outage cannot make the bus store a turn twice.

What the bot *posts* (each reply) is claimed with a lease instead (``begin``/``finish``): every
replica reads the same replies in the same order; the one whose claim wins posts, the others
wait until it is marked done and move on, and a replica that dies mid-post is taken over when
its lease runs out. So with several gateways each reply is posted once, in order.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from typing import Literal

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from events import subjects
from events.bus import Bus
from events.kv import retry_transient

log = logging.getLogger("frontdoor.seen")

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


ClaimState = Literal["mine", "resumed", "done", "busy"]
_DONE = b"done"


class SeenSet:
    """An expiring set of already handled keys in NATS KV."""

    def __init__(self, kv: KeyValue, *, lease_seconds: float = 30.0) -> None:
        self._kv = kv
        self.owner = uuid.uuid4().hex[:12]
        self.lease_seconds = lease_seconds
        self._held: dict[str, int] = {}

    @classmethod
    async def open(
        cls, bus: Bus, ttl_seconds: float, bucket: str = subjects.SLACK_SEEN_BUCKET
    ) -> SeenSet:
        """The set in ``bucket`` (created on first use; ``ttl_seconds`` may shorten its TTL)."""
        return cls(await bus.key_value(bucket, ttl=ttl_seconds))

    async def claim(self, *parts: str) -> bool:
        """True the first time ``parts`` is claimed within the window, False afterwards."""
        try:
            return await self._claim(kv_key(*parts), f"{self.owner}:{uuid.uuid4().hex}".encode())
        except (nats.errors.Error, TimeoutError) as exc:
            # Fail open: the bus still drops the duplicate turn by its envelope id.
            log.warning("seen-set unavailable (%s); relying on the bus duplicate window", exc)
        return True

    async def claim_as(self, holder: str, *parts: str) -> bool:
        """Claim ``parts`` for ``holder``: True when it is new or already ``holder``'s (a retry
        of the same holder claims again), False when someone else holds it."""
        key = kv_key(*parts)
        try:
            return await self._claim(key, holder.encode())
        except (nats.errors.Error, TimeoutError) as exc:
            # Fail open: rather handed out twice by two replicas than never.
            log.warning("claims unavailable (%s); handing %s out unclaimed", exc, key)
            return True

    async def _claim(self, key: str, value: bytes) -> bool:
        """Create ``key`` holding ``value``: True when it is new or already holds ``value``.

        Retried while the bucket has no leader (a NATS node lost): a create whose answer was
        lost may have landed, and the next try then finds its own ``value``, still a win.
        """
        try:
            await retry_transient(lambda: self._kv.create(key, value))
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            entry = await retry_transient(lambda: self._kv.get(key))
            return bytes(entry.value or b"") == value

    async def begin(self, *parts: str) -> ClaimState:
        """Claim posting ``parts``: ``mine`` (go ahead, then ``finish``), ``resumed`` (a
        claim taken over from a replica that died or from an earlier try: it may have posted
        already, check before posting), ``done`` (posted already: skip) or ``busy`` (another
        replica is posting it: try again later)."""
        key = kv_key(*parts)
        claim = f"busy:{self.owner}:{time.time() + self.lease_seconds:.3f}".encode()
        try:
            self._held[key] = int(await retry_transient(lambda: self._kv.create(key, claim)))
            return "mine"
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        entry = await retry_transient(lambda: self._kv.get(key))
        value = bytes(entry.value or b"")
        if value == _DONE:
            return "done"
        _, owner, deadline = [*value.decode(errors="replace").split(":"), "", ""][:3]
        try:
            expired = float(deadline) < time.time()
        except ValueError:
            expired = True
        if owner != self.owner and not expired:
            return "busy"
        try:  # ours from before a retry, or a dead replica's: take it over
            revision = entry.revision
            self._held[key] = int(
                await retry_transient(lambda: self._kv.update(key, claim, last=revision))
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            return "busy"
        return "resumed"

    async def finish(self, *parts: str) -> None:
        """Mark ``parts`` done (after a successful post, or a permanent failure)."""
        key = kv_key(*parts)
        revision = self._held.pop(key, None)
        if revision is None:
            await retry_transient(lambda: self._kv.put(key, _DONE))
            return
        try:
            await retry_transient(lambda: self._kv.update(key, _DONE, last=revision))
        except nats.js.errors.KeyWrongLastSequenceError:
            log.warning("slack post %s was taken over while it was being posted", key)
