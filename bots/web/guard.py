"""Who may come in, how often: the gateway's limits in front of every route and the WebSocket.

Each request passes, in this order:

1. the **address** limit (``FRONTDOOR_ADDRESS_RATE_LIMIT`` per window per client address);
2. the **failed-authentication** gate: an address with too many 401s in the window gets a 429
   for everything until the window has passed (keys and tokens cannot be brute-forced);
3. the credential (``bots.web.auth``; a 401 counts as a failure of the address);
4. the **caller** limit (``FRONTDOOR_RATE_LIMIT`` per window per session, verified user or API
   key: ``Principal.limit_key``; anonymous API callers count per address).

``POST /api/session`` also counts every *new* session against the address
(``FRONTDOOR_SESSION_RATE_LIMIT``): guests cannot mint themselves fresh identities.

A refusal is ``RateLimited``; ``rate_limited_response`` is the one 429 answer of every route
(``Retry-After`` and a reason), installed by the app as the exception's handler.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import Scope

from bots.identity import Principal
from bots.web.auth import authenticate
from bots.web.clientaddr import client_key
from bots.web.ratelimit import Rate, RateLimited, RateLimits
from bots.web.settings import WebSettings
from events.errors import FrontdoorError

if TYPE_CHECKING:
    from bots.web.app import Gateway


class EdgeGuard:
    """The gateway's rate limits and the client address they key on."""

    def __init__(self, settings: WebSettings, limits: RateLimits | None = None) -> None:
        self.limits = limits or RateLimits(max_keys=settings.rate_limit_max_keys)
        self.trusted = settings.trusted_networks()
        self.caller = Rate("caller", settings.rate_limit, settings.rate_window_seconds, "messages")
        self.polls = Rate("polls", settings.rate_limit, settings.rate_window_seconds, "polls")
        self.address = Rate(
            "address",
            settings.address_rate_limit,
            settings.address_rate_window_seconds,
            "requests from this address",
        )
        self.sessions = Rate(
            "sessions",
            settings.session_rate_limit,
            settings.session_rate_window_seconds,
            "new sessions from this address",
        )
        self.failures = Rate(
            "auth_failures",
            settings.auth_failure_limit,
            settings.auth_failure_window_seconds,
            "failed authentications from this address",
        )

    def client(self, scope: Scope) -> str:
        """The rate-limit key of the client of ``scope`` (HTTP or WebSocket)."""
        return client_key(scope, self.trusted)

    async def admit(self, scope: Scope) -> str:
        """Count a request of its address; refuse an address over its limit or its failed
        authentications. Returns the address key."""
        address = self.client(scope)
        await self.limits.hit_and_check(self.address, self.failures, address)
        return address

    async def failed(self, address: str) -> None:
        """Count a failed authentication of ``address`` (never raises)."""
        try:
            await self.limits.hit(self.failures, address)
        except RateLimited:
            pass

    async def caller_hit(
        self, principal: Principal, address: str, rate: Rate | None = None
    ) -> None:
        """Count one message or call of ``principal`` (anonymous callers: of their address)."""
        key = f"anon:{address}" if principal.kind == "anonymous" else principal.limit_key
        await self.limits.hit(rate or self.caller, key)

    async def new_session(self, address: str) -> None:
        """Count a new session of ``address``."""
        await self.limits.hit(self.sessions, address)


class TooManySockets(FrontdoorError):
    """No room for another WebSocket (in all, or from this address); the message says which."""


class SocketCounter:
    """Open WebSockets, in all and per client address (entries go when they reach zero)."""

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.total = 0
        self._by_address: Counter[str] = Counter()

    def open(self, address: str) -> None:
        """Count a new socket of ``address``; ``TooManySockets`` when there is no room."""
        if self.total >= self.max_total:
            raise TooManySockets(
                f"too many connections to this server ({self.max_total}); retry later"
            )
        if self._by_address[address] >= self.max_per_address:
            raise TooManySockets(
                f"too many connections from this address (at most {self.max_per_address})"
            )
        self.total += 1
        self._by_address[address] += 1

    def close(self, address: str) -> None:
        """A socket of ``address`` went away."""
        self.total -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]

    def of(self, address: str) -> int:
        """Open sockets of ``address``."""
        return self._by_address.get(address, 0)


async def authenticated(gateway: Gateway, request: Request, rate: Rate | None = None) -> Principal:
    """Admit the request's address, authenticate it, count it against its caller's limit."""
    guard = gateway.guard
    address = await guard.admit(request.scope)
    try:
        principal = await authenticate(gateway, request)
    except HTTPException as exc:
        if exc.status_code == 401:
            await guard.failed(address)
        raise
    await guard.caller_hit(principal, address, rate)
    return principal


def rate_limited_response(exc: RateLimited) -> JSONResponse:
    """The 429 of every route: the reason, which limit, and ``Retry-After``."""
    return JSONResponse(
        {"detail": str(exc), "limit": exc.limit, "retry_after": exc.retry_after},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )
