"""Who is talking: channel user -> ``Actor`` with roles, asked of the management service.

The management service answers ``resolve_actor`` (``{"channel", "identity", "name"}``) on its
micro endpoint (``fd.svc.management.resolve_actor``); answers are cached per (channel, user) and
all dropped when a ``user.roles_changed`` event appears on the bus. When nobody answers
(management not running), the actor gets the default role ``user`` (and the miss is cached
briefly so a turn never waits on a dead endpoint twice in a row).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from bots.tasks import cancel_and_wait
from events.bus import Bus
from events.envelope import Actor
from events.errors import FrontdoorError
from events.micro import micro_subject
from events.payloads import Reply
from events.subjects import EVENT_PREFIX

log = logging.getLogger("frontdoor.roles")

DEFAULT_ROLES: tuple[str, ...] = ("user",)
ROLES_CHANGED = "user.roles_changed"
ROLES_CHANGED_FILTER = f"{EVENT_PREFIX}.*.*.{ROLES_CHANGED}"


class RoleResolver:
    """Resolve and cache actors' roles."""

    def __init__(
        self,
        bus: Bus | None,
        *,
        ttl: float = 300.0,
        miss_ttl: float = 15.0,
        timeout: float = 0.5,
        enabled: bool = True,
    ) -> None:
        self._bus = bus
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._timeout = timeout
        self._enabled = enabled and bus is not None
        self._cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow ``user.roles_changed`` events to invalidate the cache."""
        if self._enabled and self._bus is not None:
            self._task = asyncio.create_task(self._follow(), name="roles-invalidation")

    async def stop(self) -> None:
        """Stop following the bus."""
        await cancel_and_wait(self._task)

    def invalidate(self, channel: str | None = None, user_id: str | None = None) -> None:
        """Forget cached roles (of one user, or of everyone)."""
        if user_id is None:
            self._cache.clear()
            return
        for key in [k for k in self._cache if k[1] == user_id and channel in (None, k[0])]:
            self._cache.pop(key, None)

    async def resolve(self, channel: str, user_id: str, name: str | None = None) -> Actor:
        """The actor for a channel user, with roles (cached)."""
        key = (channel, user_id)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return Actor(id=user_id, name=name, roles=cached[1])
        roles, ttl = await self._ask(channel, user_id, name)
        self._cache[key] = (now + ttl, roles)
        return Actor(id=user_id, name=name, roles=roles)

    async def _ask(
        self, channel: str, user_id: str, name: str | None
    ) -> tuple[tuple[str, ...], float]:
        if not self._enabled or self._bus is None:
            return DEFAULT_ROLES, self._ttl
        body = json.dumps({"channel": channel, "identity": user_id, "name": name}).encode()
        try:
            raw = await self._bus.request(
                micro_subject("management", "resolve_actor"), body, self._timeout
            )
            reply = Reply.model_validate_json(raw)
        except (FrontdoorError, ValueError) as exc:
            log.debug("resolve_actor unavailable (%s); default roles for %s", exc, user_id)
            return DEFAULT_ROLES, self._miss_ttl
        roles = (reply.data or {}).get("roles") if reply.status == "ok" else None
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return DEFAULT_ROLES, self._miss_ttl
        return tuple(roles) or DEFAULT_ROLES, self._ttl

    async def _follow(self) -> None:
        assert self._bus is not None
        try:
            async for _seq, _env in self._bus.tail(ROLES_CHANGED_FILTER, None):
                # Role changes are rare: forget everything rather than map identities.
                self.invalidate()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("roles invalidation stopped; clearing cache")
            self._cache.clear()
