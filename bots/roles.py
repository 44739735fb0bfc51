"""Roles of proven actors, and API keys, asked of the management service.

The gateway asks management's internal ``resolve_actor`` (``fd.svc.management.resolve_actor``,
as ``system:gateway`` with a signed claim). Answers are cached per actor in a bounded, expiring
cache and all dropped when a ``user.roles_changed`` event appears on the bus. Guests are never
looked up: they are ``guest`` by definition. When nobody answers (management not running), a
person gets the default role ``user`` (cached briefly, so a turn never waits on a dead endpoint
twice in a row). API keys are looked up on every use (a revoked key stops working at once).
"""

from __future__ import annotations

import asyncio
import logging
import time

from cachetools import TTLCache

from bots.identity import GUEST_PREFIX, Principal
from bots.tasks import cancel_and_wait
from events.bus import Bus
from events.claims import GUEST_ROLE, system_actor
from events.envelope import Actor
from events.errors import FrontdoorError
from events.micro import ServiceClient
from events.subjects import EVENT_PREFIX

log = logging.getLogger("frontdoor.roles")

DEFAULT_ROLES: tuple[str, ...] = ("user",)
GUEST_ROLES: tuple[str, ...] = (GUEST_ROLE,)
ROLES_CHANGED = "user.roles_changed"
ROLES_CHANGED_FILTER = f"{EVENT_PREFIX}.*.*.{ROLES_CHANGED}"
GATEWAY = system_actor("gateway")


class UnknownApiKey(FrontdoorError):
    """The API key is unknown or revoked."""


class RoleResolver:
    """Resolve and cache actors' roles; resolve API keys."""

    def __init__(
        self,
        bus: Bus | None,
        client: ServiceClient | None,
        *,
        ttl: float = 300.0,
        miss_ttl: float = 15.0,
        timeout: float = 0.5,
        enabled: bool = True,
        cache_size: int = 50_000,
    ) -> None:
        self._bus = bus
        self._client = client
        self._ttl = ttl
        self._miss_ttl = miss_ttl
        self._timeout = timeout
        self._enabled = enabled and bus is not None and client is not None
        # (expires at, roles): the cache's own TTL bounds memory; the stored expiry makes a
        # miss (management down) expire sooner than an answer.
        self._cache: TTLCache[str, tuple[float, tuple[str, ...]]] = TTLCache(
            maxsize=cache_size, ttl=ttl
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow ``user.roles_changed`` events to invalidate the cache."""
        if self._enabled and self._bus is not None:
            self._task = asyncio.create_task(self._follow(), name="roles-invalidation")

    async def stop(self) -> None:
        """Stop following the bus."""
        await cancel_and_wait(self._task)

    def invalidate(self, actor_id: str | None = None) -> None:
        """Forget cached roles (of one actor, or of everyone)."""
        if actor_id is None:
            self._cache.clear()
        else:
            self._cache.pop(actor_id, None)

    async def resolve(self, actor_id: str, name: str | None = None) -> Actor:
        """The actor ``actor_id`` (already proven by its channel), with roles (cached)."""
        if actor_id.startswith(GUEST_PREFIX):
            return Actor(id=actor_id, name=name, roles=GUEST_ROLES)
        now = time.monotonic()
        cached = self._cache.get(actor_id)
        if cached is not None and cached[0] > now:
            return Actor(id=actor_id, name=name, roles=cached[1])
        roles, ttl = await self._ask(actor_id)
        self._cache[actor_id] = (now + ttl, roles)
        return Actor(id=actor_id, name=name, roles=roles)

    async def with_roles(self, principal: Principal) -> Principal:
        """``principal`` with its actor's roles resolved."""
        actor = await self.resolve(principal.actor.id, principal.actor.name)
        return Principal(
            actor=actor, kind=principal.kind, scope=principal.scope, email=principal.email
        )

    async def api_key(self, key: str) -> Principal:
        """The principal of an API key's user; ``UnknownApiKey`` when unknown or revoked,
        ``BusUnavailable`` when management does not answer."""
        if self._client is None:
            raise UnknownApiKey("API keys are not available (no management service)")
        reply = await self._client.call(
            "management", "resolve_actor", {"api_key": key}, GATEWAY, timeout=5.0
        )
        data = reply.data or {}
        if reply.status != "ok" or not data.get("known"):
            raise UnknownApiKey("Unknown or revoked API key.")
        actor = Actor(
            id=str(data["actor_id"]),
            name=data.get("name") or data.get("user"),
            roles=tuple(data.get("roles") or DEFAULT_ROLES),
        )
        return Principal(actor=actor, kind="api_key", scope=actor.id, email=data.get("email"))

    async def _ask(self, actor_id: str) -> tuple[tuple[str, ...], float]:
        if not self._enabled or self._client is None:
            return DEFAULT_ROLES, self._ttl
        try:
            reply = await self._client.call(
                "management", "resolve_actor", {"actor": actor_id}, GATEWAY, timeout=self._timeout
            )
        except (FrontdoorError, ValueError) as exc:
            log.debug("resolve_actor unavailable (%s); default roles for %s", exc, actor_id)
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
