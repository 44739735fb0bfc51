"""The front door's web gateway: one FastAPI app with the REST webhook, the WebSocket, sessions,
the widget's static files, and the lifecycle of the turn pipeline and the reply router.

``create_gateway_app(bus, dialogue, ...)`` builds it; ``app.state.gateway`` (a ``Gateway``)
exposes ``pipeline`` and ``router`` so other channels (Slack) can be attached before start-up::

    app = create_gateway_app(bus, engine, settings=WebSettings())
    gateway = app.state.gateway
    gateway.router.register("slack", slack_adapter)   # replies of slack conversations
    app.include_router(slack_router)                  # /slack/events, using gateway.pipeline
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bots.handoff import HandoffRegistry
from bots.identity import SiteUser, Unauthenticated
from bots.personas import BotRegistry, load_bots
from bots.roles import RoleResolver
from bots.router import ReplyRouter
from bots.seen import SeenSet
from bots.ticket_updates import (
    ChatNotices,
    EmailNotices,
    Mailer,
    SmtpSettings,
    TicketConversations,
)
from bots.turns import Dialogue, TurnPipeline
from bots.web.auth import unauthorized
from bots.web.docs import add_docs
from bots.web.errors import CatchAll, ErrorReporter, answers, validation_response
from bots.web.guard import EdgeGuard, SocketCounter, rate_limited_response
from bots.web.health import HealthCheck, gather_health
from bots.web.limits import BodySizeLimit, SecurityHeaders
from bots.web.ratelimit import RateLimited
from bots.web.rest import RestChannel, rest_router
from bots.web.sessions import InvalidSession, Session, SessionSigner
from bots.web.settings import WebSettings
from bots.web.shared_limits import rate_limits_for
from bots.web.text import EdgeText
from bots.web.websocket import websocket_router
from events import subjects
from events.bus import Bus
from events.claims import ClaimIssuer
from events.errors import BusError
from events.micro import ServiceClient

log = logging.getLogger("frontdoor.web")

STATIC_DIR = Path(__file__).parent / "static"
Hook = Callable[[], Awaitable[None]]


class Gateway:
    """Everything the channels share: pipeline, reply router, sessions, limits, bots."""

    def __init__(
        self,
        bus: Bus,
        dialogue: Dialogue,
        settings: WebSettings,
        bots: BotRegistry,
        *,
        issuer: ClaimIssuer,
        turn_factory: Callable[..., Any] | None = None,
        smtp: SmtpSettings | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.bots = bots
        self.issuer = issuer
        #: signed calls to the services' request doors (roles, API keys, the HTTP doors)
        self.services = ServiceClient(bus, issuer)
        self.roles = RoleResolver(bus, self.services, enabled=settings.resolve_roles)
        self.site_tokens = settings.site_token_verifier()
        self.handoff = HandoffRegistry(bus)
        self.pipeline = TurnPipeline(
            bus,
            dialogue,
            issuer=issuer,
            roles=self.roles,
            handoff=self.handoff,
            turn_factory=turn_factory,
        )
        self.router = ReplyRouter(bus)
        #: requesters hear about their tickets: in their conversation, and by e-mail when
        #: SMTP is configured (``bots.ticket_updates``)
        self.ticket_notices = ChatNotices(bus)
        self.smtp = smtp
        self.email_notices: EmailNotices | None = None
        self.rest = RestChannel(
            settings.rest_pending_max,
            pending_ttl=settings.rest_pending_ttl_seconds,
        )
        self.router.register("rest", self.rest)
        self.signer = SessionSigner(
            settings.session_secret.get_secret_value(), settings.session_max_age_seconds
        )
        #: rate limits by client address and by caller (``bots.web.guard``), in this process
        #: or shared by every replica (``FRONTDOOR_RATE_LIMIT_STORAGE``)
        self.guard = EdgeGuard(settings, rate_limits_for(settings, bus))
        #: unexpected errors, logged once and compactly (``bots.web.errors``)
        self.errors = ErrorReporter()
        #: open WebSockets: in all and per client address (``FRONTDOOR_WS_MAX_CONNECTIONS*``)
        self.sockets = SocketCounter(
            settings.ws_max_connections, settings.ws_max_connections_per_address
        )
        #: the agent workspace (``bots.web.agent``), when it is on
        self.workspace: Any = None
        self.on_start: list[Hook] = []
        self.on_stop: list[Hook] = []
        #: the services' health, by name, shown by ``/healthz`` (set by whoever runs them)
        self.health_checks: dict[str, HealthCheck] = {}
        self.started = False

    async def start(self) -> None:
        """Start following the bus (roles, hand-offs, replies) and the extra hooks."""
        await self.roles.start()
        await self.guard.limits.start()
        # REST replies are handed out once, whichever replica the caller reaches
        self.rest.claims = await SeenSet.open(
            self.bus, self.settings.rest_pending_ttl_seconds, subjects.DELIVERED_BUCKET
        )
        await self.handoff.start()
        await self.router.start()
        conversations = await TicketConversations.open(self.bus)
        self.ticket_notices.conversations = conversations
        await self.ticket_notices.start()
        if self.smtp is not None and self.smtp.enabled:
            self.email_notices = EmailNotices(self.bus, Mailer(self.smtp), self.smtp, conversations)
            await self.email_notices.start()
        for hook in self.on_start:
            await hook()
        self.started = True

    async def stop(self) -> None:
        """Stop in reverse order; the router stores its position last."""
        for hook in reversed(self.on_stop):
            with contextlib.suppress(Exception):
                await hook()
        if self.email_notices is not None:
            await self.email_notices.stop()
        await self.ticket_notices.stop()
        await self.router.stop()
        await self.handoff.stop()
        await self.roles.stop()
        self.started = False


class SessionRequest(BaseModel):
    """``POST /api/session`` body: optionally the token to renew, and the site's user token."""

    model_config = ConfigDict(extra="ignore")

    token: EdgeText | None = Field(default=None, max_length=2048, description="A session to renew")
    user_token: EdgeText | None = Field(
        default=None,
        max_length=8192,
        description="A user token signed by the embedding site (identity verification)",
    )


class SessionOut(BaseModel):
    """A session: the signed token and the sender (conversation id) inside it."""

    token: str
    sender: str
    expires_in: int
    renewed: bool
    user: str | None = Field(default=None, description="The verified site user, if any")


def _api_router() -> APIRouter:
    router = APIRouter(tags=["web session"])

    @router.post(
        "/api/session",
        response_model=SessionOut,
        summary="Issue or renew a session (a guest's, or a site user's with a user token)",
        responses=answers(401, 413, 422, 429, 500),
    )
    async def session(request: Request, body: SessionRequest | None = None) -> SessionOut:
        gateway: Gateway = request.app.state.gateway
        address = await gateway.guard.admit(request.scope)
        old: Session | None = None
        if body is not None and body.token:
            with contextlib.suppress(InvalidSession):
                old = gateway.signer.verify(body.token)
        try:
            user = _site_user(gateway, body.user_token if body is not None else None)
        except HTTPException:
            await gateway.guard.failed(address)
            raise
        if user is None and old is not None and old.user is not None:
            # A user's session is renewed only with a fresh user token from the site.
            old = None
        sender = old.sender if old is not None else None
        if old is not None and old.user is not None and user is not None:
            if old.user.subject != user.subject:
                sender = None  # another person: another conversation
        if sender is None:
            await gateway.guard.new_session(address)  # a new conversation: guests mint them
        token, issued = gateway.signer.issue(sender, user)
        return SessionOut(
            token=token,
            sender=issued.sender,
            expires_in=gateway.signer.expires_in(issued),
            renewed=sender is not None,
            user=user.actor_id if user is not None else None,
        )

    @router.get("/api/bots", summary="The bots one can talk to", responses=answers(500))
    async def bots(request: Request) -> list[dict[str, str]]:
        gateway: Gateway = request.app.state.gateway
        return [
            {"name": b.name, "kind": b.kind, "description": b.description} for b in gateway.bots
        ]

    @router.get(
        "/healthz",
        summary="Liveness, reply-router state and the services' health",
        responses={503: {"description": "The bus or the reply router is down"}, **answers(500)},
    )
    async def healthz(request: Request) -> JSONResponse:
        """503 when the gateway itself cannot work (bus or reply router down). A service that
        is down shows under ``services`` and in ``services_ok``, but keeps the status 200: the
        gateway still answers everything that service is not needed for."""
        gateway: Gateway = request.app.state.gateway
        ok = gateway.bus.connected and gateway.router.running
        services = await gather_health(gateway.health_checks)
        return JSONResponse(
            {
                "ok": ok,
                "nats": gateway.bus.connected,
                "reply_router": gateway.router.running,
                "router_position": gateway.router.position,
                "services_ok": all(state.get("ok") for state in services.values()),
                "services": services,
            },
            status_code=200 if ok else 503,
        )

    return router


def _site_user(gateway: Gateway, user_token: str | None) -> SiteUser | None:
    """The site user a ``user_token`` proves (``None`` without one; 401 when it is bad)."""
    if not user_token:
        return None
    if gateway.site_tokens is None:
        raise unauthorized(
            "This front door accepts no user tokens (no site token key is configured)."
        )
    try:
        return gateway.site_tokens.verify(user_token, time.time())
    except Unauthenticated as exc:
        raise unauthorized(f"The user token is not valid: {exc}.") from None


def _static_router(static_dir: Path) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def _file(name: str, media_type: str) -> FileResponse | JSONResponse:
        path = static_dir / name
        if not path.is_file():
            return JSONResponse({"detail": f"{name} is not installed"}, status_code=404)
        return FileResponse(path, media_type=media_type)

    @router.get("/")
    async def index() -> Any:
        return _file("index.html", "text/html; charset=utf-8")

    @router.get("/widget.js")
    async def widget_js() -> Any:
        return _file("widget.js", "text/javascript; charset=utf-8")

    @router.get("/widget.css")
    async def widget_css() -> Any:
        return _file("widget.css", "text/css; charset=utf-8")

    return router


def uvicorn_limits(app: FastAPI) -> dict[str, Any]:
    """uvicorn settings the gateway ``app`` relies on: its WebSocket frames are limited like
    its bodies, and uvicorn believes no ``X-Forwarded-For`` (the gateway reads it itself, from
    ``FRONTDOOR_TRUSTED_PROXIES`` only)."""
    settings: WebSettings | None = getattr(getattr(app.state, "gateway", None), "settings", None)
    limits: dict[str, Any] = {"proxy_headers": False}
    if settings is not None:
        limits["ws_max_size"] = settings.max_body_bytes
    return limits


def create_gateway_app(
    bus: Bus,
    dialogue: Dialogue,
    *,
    issuer: ClaimIssuer,
    settings: WebSettings | None = None,
    bots: BotRegistry | None = None,
    routers: Sequence[APIRouter] = (),
    static_dir: Path | None = None,
    turn_factory: Callable[..., Any] | None = None,
    title: str = "Frontdoor",
    smtp: SmtpSettings | None = None,
) -> FastAPI:
    """Build the web gateway app.

    ``bus``: a connected ``Bus``; ``dialogue``: the ``DialogueEngine`` (anything with
    ``async handle(UserTurn) -> TurnOutcome``); ``issuer``: signs the actors' claims for the
    services (``events.claims``); ``settings``: ``WebSettings`` (default: from the
    environment); ``bots``: the bot registry (default: built-ins + ``settings.experts_file``);
    ``routers``: extra routers to mount (e.g. the headless intents API); ``smtp``: e-mail
    for ticket notices (default: ``SmtpSettings()`` from the environment, off without
    ``FRONTDOOR_SMTP_HOST``). The app's lifespan starts/stops the gateway (reply router,
    hand-off and roles followers, ticket notices).
    """
    settings = settings or WebSettings()
    smtp = smtp if smtp is not None else SmtpSettings()
    bots = bots or load_bots(settings.experts_file)
    gateway = Gateway(
        bus, dialogue, settings, bots, issuer=issuer, turn_factory=turn_factory, smtp=smtp
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title=title,
        lifespan=lifespan,
        docs_url=None,  # served from local files below (no CDN; the pages' CSP holds)
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.gateway = gateway
    if settings.docs:
        add_docs(app, STATIC_DIR)

    @app.exception_handler(BusError)
    async def bus_unavailable(_request: Request, exc: BusError) -> JSONResponse:
        log.error("turn failed: the bus is not available (%s)", exc)
        return JSONResponse(
            {"detail": "The message bus is not reachable right now; please try again shortly."},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    app.add_exception_handler(RequestValidationError, validation_response)

    @app.exception_handler(RateLimited)
    async def rate_limited(_request: Request, exc: RateLimited) -> JSONResponse:
        return rate_limited_response(exc)

    app.include_router(_api_router())
    app.include_router(rest_router())
    app.include_router(websocket_router())
    for router in routers:
        app.include_router(router)
    if settings.agent_workspace:
        from bots.web.agent import add_agent_workspace

        add_agent_workspace(app, static_dir or STATIC_DIR)
    app.include_router(_static_router(static_dir or STATIC_DIR))
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth
    )
    app.add_middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors)
    if origins := settings.cors_origin_list():
        # The widget on another site calls /api/session, /api/bots and the REST webhook and
        # opens the WebSocket; its token travels in the body/query, so no credentials (cookies).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
            max_age=600,
        )
    app.add_middleware(CatchAll, reporter=gateway.errors)  # outermost: nothing escapes it
    return app
