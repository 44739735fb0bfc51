"""Agents' sign-in at ``/agent``: a signed, expiring session cookie, CSRF, roles on every call.

- Sign-in (``POST /agent/api/session``) checks a handle (or email) and password with
  management's internal ``check_password`` (asked as ``system:gateway``); only users with the
  ``agent`` or ``admin`` role get a session. Failures count against the client address (the
  gateway's failed-authentication gate) and against the user name.
- The session is a cookie ``fd_agent`` (itsdangerous, keyed by ``FRONTDOOR_SESSION_SECRET``
  with its own salt): ``HttpOnly``, ``SameSite=Strict``, ``Secure`` on https, ``Path=/agent``,
  expiring after ``FRONTDOOR_AGENT_SESSION_MAX_AGE_SECONDS``. Sign-out revokes it.
- Every state-changing call needs the session's CSRF token in ``X-CSRF-Token`` and, when the
  browser says where it comes from (``Origin``, ``Sec-Fetch-Site``), this very origin.
- Every call re-reads the agent's roles (cached, dropped on ``user.roles_changed``): a user who
  lost the role is refused at once (403), and the agent's own claim is what services see.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cachetools import TTLCache
from fastapi import APIRouter, HTTPException, Request, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field

from bots.roles import GATEWAY
from bots.web.errors import answers
from bots.web.ratelimit import Rate, RateLimited
from events.bus import Bus
from events.envelope import Actor
from events.errors import BusUnavailable
from events.kv import VersionedKV
from events.subjects import AGENT_SIGNOUTS_BUCKET

if TYPE_CHECKING:
    from bots.web.agent.board import HandoffBoard
    from bots.web.agent.notices import HandoffNotices
    from bots.web.app import Gateway

COOKIE = "fd_agent"
COOKIE_PATH = "/agent"
CSRF_HEADER = "X-CSRF-Token"
STAFF_ROLES = frozenset({"agent", "admin"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Agent:
    """A signed-in agent: the actor services see (``user:<handle>``, roles), and the session."""

    actor: Actor
    handle: str
    session_id: str
    csrf: str
    expires_at: float

    @property
    def display(self) -> str:
        """The name users and colleagues see."""
        return self.actor.name or self.handle


class AgentSessions:
    """Issues, verifies and revokes agents' session cookies."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="frontdoor.agent.session")
        self.max_age_seconds = max_age_seconds
        #: sessions signed out before they expired (kept as long as they could still be used)
        self._revoked: TTLCache[str, bool] = TTLCache(100_000, max_age_seconds)
        #: the sign-outs every replica sees (``fd_agent_signouts``; set at start)
        self.shared: VersionedKV | None = None

    async def open_shared(self, bus: Bus) -> None:
        """Share sign-outs with the other gateway replicas through NATS KV."""
        self.shared = await VersionedKV.open(bus, AGENT_SIGNOUTS_BUCKET)

    async def check_signed_in(self, session_id: str) -> None:
        """``ValueError`` when the session was signed out, on any replica.

        One KV read per workspace call: an agent's calls are few, and a stolen cookie must stop
        working everywhere the moment its owner signs out.
        """
        if session_id in self._revoked:
            raise ValueError("you signed out; sign in again")
        if self.shared is not None and session_id:
            if await self.shared.get(session_id) is not None:
                self._revoked[session_id] = True
                raise ValueError("you signed out; sign in again")

    def issue(self, handle: str, name: str | None) -> tuple[str, str, str]:
        """``(cookie value, session id, CSRF token)`` of a new session."""
        sid, csrf = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
        data = {"h": handle, "n": name, "i": sid, "c": csrf}
        return self._serializer.dumps(data), sid, csrf

    def verify(self, value: str | None) -> tuple[dict[str, Any], float]:
        """The session's data and when it expires; ``ValueError`` with the reason otherwise."""
        if not value or len(value) > 1024:
            raise ValueError("you are not signed in")
        try:
            data, signed_at = self._serializer.loads(
                value, max_age=self.max_age_seconds, return_timestamp=True
            )
        except SignatureExpired:
            raise ValueError("your session expired; sign in again") from None
        except BadSignature:
            raise ValueError("the session is not valid; sign in again") from None
        if not isinstance(data, dict) or not isinstance(data.get("h"), str):
            raise ValueError("the session is not valid; sign in again")
        return data, signed_at.timestamp() + self.max_age_seconds

    async def revoke(self, session_id: str) -> None:
        """End a session before it expires (sign-out), on every replica."""
        self._revoked[session_id] = True
        if self.shared is not None:
            await self.shared.put(session_id, b"1")


class SignIn(BaseModel):
    """``POST /agent/api/session``: a handle (or email) and the password."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class SessionInfo(BaseModel):
    """Who is signed in, the CSRF token to send with every change, and when it ends."""

    user: str
    name: str
    actor: str
    roles: list[str]
    csrf_token: str
    expires_at: float


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(status_code=403, detail=detail)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail)


def check_origin(request: Request, gateway: Gateway) -> None:
    """Refuse a request a browser says comes from another site (403)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise _forbidden(f"cross-site requests are refused (Sec-Fetch-Site: {fetch_site[:32]})")
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or a same-origin GET: the CSRF token still decides
    host = request.headers.get("host", "")
    allowed = {o.lower() for o in gateway.settings.cors_origin_list()}
    if urlsplit(origin).netloc.lower() != host.lower() and origin.lower() not in allowed:
        raise _forbidden("requests from another origin are refused")


def _secure(request: Request, gateway: Gateway) -> bool:
    mode = gateway.settings.agent_cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


class Workspace:
    """The workspace's share of the gateway: sessions, limits, the sign-in."""

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.settings
        self.gateway = gateway
        #: the hand-offs, live (set by ``add_agent_workspace``)
        self.board: HandoffBoard
        #: what users hear about their hand-offs (set by ``add_agent_workspace``)
        self.notices: HandoffNotices
        self.sessions = AgentSessions(
            settings.session_secret.get_secret_value(), settings.agent_session_max_age_seconds
        )
        self.calls = Rate(
            "agent", settings.agent_rate_limit, settings.rate_window_seconds, "workspace calls"
        )
        self.signin_failures = Rate(
            "signin_failures",
            settings.agent_signin_failure_limit,
            settings.auth_failure_window_seconds,
            "failed sign-ins for this user",
        )

    async def agent(self, request: Request, *, change: bool = False) -> Agent:
        """The signed-in agent of ``request`` (401 none, 403 not an agent or a refused change);
        counted against the address and the agent's limits."""
        gateway = self.gateway
        address = await gateway.guard.admit(request.scope)
        if change:
            check_origin(request, gateway)
        try:
            data, expires = self.sessions.verify(request.cookies.get(COOKIE))
            await self.sessions.check_signed_in(str(data.get("i", "")))
        except ValueError as exc:
            if request.cookies.get(COOKIE):
                await gateway.guard.failed(address)  # a forged or stale cookie
            raise _unauthorized(str(exc)) from None
        handle = str(data["h"])
        actor = await gateway.roles.resolve(f"user:{handle}", data.get("n") or None)
        if not STAFF_ROLES & set(actor.roles):
            raise _forbidden(f"{handle} has neither the agent nor the admin role")
        csrf = str(data.get("c", ""))
        if change:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), csrf.encode()):
                raise _forbidden(f"missing or wrong {CSRF_HEADER} header")
        await gateway.guard.limits.hit(self.calls, actor.id)
        return Agent(actor, handle, str(data.get("i", "")), csrf, expires)

    async def sign_in(self, request: Request, body: SignIn, response: Response) -> SessionInfo:
        """Check the password with management; set the session cookie."""
        gateway = self.gateway
        address = await gateway.guard.admit(request.scope)
        check_origin(request, gateway)
        who = body.user.strip().lower()
        await gateway.guard.limits.check(self.signin_failures, who)
        try:
            reply = await gateway.services.call(
                "management", "check_password", {"user": who, "password": body.password}, GATEWAY
            )
        except BusUnavailable:
            raise HTTPException(
                503,
                detail="Sign-in is not available right now (management is not answering).",
                headers={"Retry-After": "5"},
            ) from None
        data = reply.data or {}
        if reply.status != "ok" or not data.get("known"):
            await gateway.guard.failed(address)
            try:
                await gateway.guard.limits.hit(self.signin_failures, who)
            except RateLimited:
                pass  # counted; the next attempt is refused by the check above
            raise _unauthorized("Wrong user name or password.")
        roles = [str(r) for r in data.get("roles") or []]
        handle = str(data.get("user"))
        if not STAFF_ROLES & set(roles):
            raise _forbidden(f"{handle} has neither the agent nor the admin role")
        name = data.get("name") or handle
        value, _sid, csrf = self.sessions.issue(handle, name)
        max_age = self.sessions.max_age_seconds
        response.set_cookie(
            COOKIE,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            httponly=True,
            secure=_secure(request, gateway),
            samesite="strict",
        )
        gateway.roles.invalidate(f"user:{handle}")
        return SessionInfo(
            user=handle,
            name=name,
            actor=f"user:{handle}",
            roles=roles,
            csrf_token=csrf,
            expires_at=time.time() + max_age,
        )


def info_of(agent: Agent) -> SessionInfo:
    """What ``GET /agent/api/session`` answers."""
    return SessionInfo(
        user=agent.handle,
        name=agent.display,
        actor=agent.actor.id,
        roles=list(agent.actor.roles),
        csrf_token=agent.csrf,
        expires_at=agent.expires_at,
    )


def workspace_of(request: Request) -> Workspace:
    """The app's ``Workspace``."""
    workspace: Workspace = request.app.state.gateway.workspace
    return workspace


def auth_router() -> APIRouter:
    """Sign in, who am I, sign out."""
    router = APIRouter(prefix="/agent/api", tags=["agent workspace"])

    @router.post(
        "/session",
        response_model=SessionInfo,
        summary="Sign in to the agent workspace (sets the session cookie)",
        responses=answers(401, 403, 413, 422, 429, 500, 503),
    )
    async def sign_in(request: Request, body: SignIn, response: Response) -> SessionInfo:
        return await workspace_of(request).sign_in(request, body, response)

    @router.get(
        "/session",
        response_model=SessionInfo,
        summary="The signed-in agent and the CSRF token",
        responses=answers(401, 403, 429, 500),
    )
    async def session(request: Request) -> SessionInfo:
        return info_of(await workspace_of(request).agent(request))

    @router.delete(
        "/session",
        status_code=204,
        summary="Sign out",
        responses=answers(401, 403, 429, 500),
    )
    async def sign_out(request: Request) -> Response:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=True)
        await workspace.sessions.revoke(agent.session_id)
        response = Response(status_code=204)
        response.delete_cookie(
            COOKIE,
            path=COOKIE_PATH,
            httponly=True,
            secure=_secure(request, workspace.gateway),
            samesite="strict",
        )
        return response

    return router
