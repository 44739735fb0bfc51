"""Composition: connect the bus (or start an embedded nats-server), start services, build the
gateway app, serve it with uvicorn, and stop everything in reverse order on SIGINT/SIGTERM.

Each component connects as its own NATS user (``events.compartments``): on the embedded server
of ``frontdoor up`` with the credential generated for it in the data dir, so one process holds
one NATS connection per component (the gateway's and one per service).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app

from backend_services import registry
from backend_services.runtime import ServiceRunner
from bots.web.intents_api import intents_router
from events.bus import Bus
from events.claims import ClaimVerifier
from events.compartments import COMPONENTS, GATEWAY
from events.credentials import NatsCredentials
from events.dead import ExhaustedIntents
from events.embedded import EmbeddedNats
from events.errors import StartupRefused, StreamsMissing
from events.memory import freeze_long_lived
from frontdoor.keys import (
    PUBLIC_FILE,
    ClaimKeySettings,
    KeysNotConfigured,
    claim_issuer,
    claim_verifier,
    ensure_local_keys,
    keys_dir,
)
from frontdoor.local_nats import NATS_PID_FILE, NATS_URL_FILE, credentials_dir, server_dir
from frontdoor.settings import FrontdoorSettings, nats_credentials_problem, redact_url

log = structlog.get_logger("frontdoor.wiring")

Closer = Callable[[], Awaitable[Any]]
#: While NATS is unreachable, a turn answers 503 (Retry-After) after this long, not 30 s later.
UNAVAILABLE_AFTER = 3.0
#: Bound of each shutdown step (a service still answering, a bus that cannot flush).
STOP_TIMEOUT = 15.0


class ConfigurationError(StartupRefused):
    """The command cannot run with this configuration (the message says what to set)."""


@dataclass
class Stack:
    """Everything one process runs; ``aclose()`` stops it in reverse order.

    ``bus`` is the connection of ``component`` (the gateway's in ``up``). ``connect(name)``
    gives another component its own connection (its own NATS user on the embedded server,
    ``NATS_URL`` as given otherwise); a stack without ``nats_url`` (tests) shares ``bus``.
    """

    bus: Bus
    server: EmbeddedNats | None = None
    runners: list[ServiceRunner] = field(default_factory=list)
    closers: list[Closer] = field(default_factory=list)
    pid_file: Path | None = None
    #: where the bus is connected, without the embedded server's credentials (a secret when
    #: it is ``NATS_URL``, which may carry them)
    nats_url: str = ""
    component: str = GATEWAY
    #: the embedded server's generated credentials (``None`` with ``NATS_URL``)
    credentials: NatsCredentials | None = None
    #: other components' connections, closed after the runners
    buses: list[Bus] = field(default_factory=list)
    streams_wait: float = 60.0

    def url_for(self, component: str) -> str:
        """The URL ``component`` connects with (secret: it may carry a password)."""
        if self.credentials is not None:
            return self.credentials.url(self.nats_url, component)
        return self.nats_url

    async def connect(self, component: str) -> Bus:
        """A connection for ``component``: this stack's own bus for its own component."""
        if component == self.component or not self.nats_url:
            return self.bus
        bus = await connect_component(
            self.url_for(component), component, streams_wait=self.streams_wait
        )
        self.buses.append(bus)
        return bus

    async def aclose(self) -> None:
        """Stop services, close the gateway's resources and the buses, stop the embedded server."""
        for runner in reversed(self.runners):
            try:
                await asyncio.wait_for(runner.stop(), STOP_TIMEOUT)
            except Exception as exc:
                log.warning(
                    "service did not stop cleanly", service=runner.service.name, error=repr(exc)
                )
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(closer(), STOP_TIMEOUT)
        for bus in (*reversed(self.buses), self.bus):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.close(), STOP_TIMEOUT)
        if self.server is not None:
            await self.server.stop()
            log.info("embedded nats-server stopped")
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
            (self.pid_file.parent / NATS_URL_FILE).unlink(missing_ok=True)


async def connect_component(url: str, component: str, *, streams_wait: float = 60.0) -> Bus:
    """Connect ``component``: the gateway creates the streams, the others (services) may not
    and wait up to ``streams_wait`` s for them (``ConfigurationError`` naming what is missing).
    """
    if component == GATEWAY:
        return await Bus.connect(url, name=f"frontdoor-{component}")
    bus = await Bus.connect(url, name=f"frontdoor-{component}", ensure=False)
    try:
        await bus.require_streams(wait=streams_wait)
    except StreamsMissing as exc:
        await bus.close()
        raise ConfigurationError(str(exc)) from None
    except BaseException:
        await bus.close()
        raise
    return bus


def _never_log_nats(url: str, credentials: NatsCredentials | None) -> None:
    """Register this process's NATS passwords with the log redaction (``frontdoor.logs``)."""
    from frontdoor.logs import add_secret

    if credentials is not None:
        add_secret(*credentials.passwords.values())
    for server in url.split(","):
        with contextlib.suppress(ValueError):
            add_secret(unquote(urlsplit(server.strip()).password or ""))


async def open_bus(settings: FrontdoorSettings, *, embedded: bool, component: str) -> Stack:
    """Connect ``component`` to ``NATS_URL``, or (``embedded``, ``frontdoor up``) start a
    private nats-server with authentication in the data dir and connect as ``component``.

    Without ``embedded`` (``frontdoor serve``) ``NATS_URL`` must carry credentials unless
    ``FRONTDOOR_NATS_ALLOW_ANONYMOUS`` is set.
    """
    url = settings.nats()
    server: EmbeddedNats | None = None
    pid_file: Path | None = None
    credentials: NatsCredentials | None = None
    if url is None:
        if not embedded:
            raise ConfigurationError(
                "NATS_URL is not set. `frontdoor serve` never starts an embedded nats-server: "
                f"point it at your NATS (e.g. NATS_URL=nats://{component}:<password>@nats:4222),"
                " or run everything in one process with `frontdoor up`."
            )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        credentials = NatsCredentials.ensure(credentials_dir(settings.data_dir), COMPONENTS)
        server = EmbeddedNats(server_dir(settings.data_dir), credentials=credentials)
        url = await server.start()
        pid_file = settings.data_dir / NATS_PID_FILE
        pid_file.write_text(f"{server.pid}\n")
        (settings.data_dir / NATS_URL_FILE).write_text(f"{url}\n")
        log.info(
            "embedded nats-server started",
            url=url,
            pid=server.pid,
            store=str(server.data_dir),
            credentials=str(credentials.directory),
        )
    elif not embedded:
        problem = nats_credentials_problem(
            url, component, allow_anonymous=settings.nats_allow_anonymous
        )
        if problem:
            raise ConfigurationError(problem)
    _never_log_nats(url, credentials)
    own_url = credentials.url(url, component) if credentials is not None else url
    try:
        bus = await connect_component(own_url, component, streams_wait=settings.streams_wait)
    except BaseException:
        if server is not None:
            await server.stop()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
            (pid_file.parent / NATS_URL_FILE).unlink(missing_ok=True)
        raise
    stack = Stack(
        bus=bus,
        server=server,
        pid_file=pid_file,
        nats_url=url,
        component=component,
        credentials=credentials,
        streams_wait=settings.streams_wait,
    )
    log.info("connected to NATS", url=redact_url(own_url), component=component)
    return stack


async def start_services(stack: Stack, names: list[str], keys_from: Path | None) -> None:
    """Start a runner for each service in ``names``, each on its own connection.

    Each verifies claims with the public keys of the environment, else of ``keys_from`` (the
    data directory of ``up``).
    """
    key_settings = ClaimKeySettings()
    for name in names:
        verifier = _verifier(key_settings, keys_from, name)
        runner = ServiceRunner(
            registry.load_service(name), await stack.connect(name), verifier=verifier
        )
        await runner.start()
        stack.runners.append(runner)


def _verifier(settings: ClaimKeySettings, keys_from: Path | None, name: str) -> ClaimVerifier:
    try:
        return claim_verifier(settings, keys_from, name)
    except KeysNotConfigured as exc:
        raise ConfigurationError(str(exc)) from None


def _configured(make: Callable[[], Any]) -> Any:
    """``make()``, with missing keys reported as a configuration error."""
    try:
        return make()
    except KeysNotConfigured as exc:
        raise ConfigurationError(str(exc)) from None


async def _open_dialogue(bus: Bus, stack: Stack, *, train_if_missing: bool) -> Any:
    """The dialogue engine of the web gateway: NLU, conversation store in KV, skills.

    With ``train_if_missing`` (``frontdoor up``) and the built-in engine, a first start trains
    the shipped assistant's model; otherwise a missing model is reported clearly.
    """
    from skills.dialogue import DialogueEngine, KVConversationStore, SkillRegistry
    from skills.nlu.lifecycle.settings import NLUSettings, make_registry, open_engine

    nlu_settings = NLUSettings()
    if nlu_settings.nlu_engine == "builtin":
        model_registry = make_registry(nlu_settings, bus)
        if train_if_missing:
            from frontdoor.default_model import ensure_default_model

            await ensure_default_model(model_registry)
        elif await model_registry.latest() is None:
            log.error(
                "no NLU model published: every message will get an 'unavailable' answer until "
                "one is (run `frontdoor train` and `frontdoor nlu publish`)"
            )
    nlu = await open_engine(nlu_settings, bus)
    stack.closers.append(nlu.aclose)
    store = await KVConversationStore.open(bus)
    return DialogueEngine(nlu=nlu, store=store, skills=SkillRegistry.load())


async def build_gateway(
    settings: FrontdoorSettings,
    stack: Stack,
    *,
    train_if_missing: bool = False,
    keys_from: Path | None = None,
) -> FastAPI:
    """The gateway app: web channels, the headless API, the services' HTTP doors.

    Claims are signed with the environment's key, else with ``keys_from``'s (``up``).
    """
    from bots.ticket_updates import SmtpSettings
    from bots.web.app import create_gateway_app
    from bots.web.settings import WebSettings
    from frontdoor.doors import add_service_doors

    bus = stack.bus
    bus.unavailable_after = UNAVAILABLE_AFTER
    issuer = _configured(lambda: claim_issuer(ClaimKeySettings(), keys_from))
    web_settings = WebSettings()
    smtp = _smtp_settings(SmtpSettings)
    api = intents_router(
        bus,
        known_actions=registry.service_actions(),
        allow_anonymous=web_settings.api_anonymous,
        timeout=settings.intent_timeout,
    )
    waiter = api.reply_waiter  # type: ignore[attr-defined]
    await waiter.start()
    stack.closers.append(waiter.stop)
    exhausted = ExhaustedIntents(bus)  # intents nobody answered: tell the user, dead-letter
    await exhausted.start()
    stack.closers.append(exhausted.stop)
    dialogue = await _open_dialogue(bus, stack, train_if_missing=train_if_missing)
    app = create_gateway_app(
        bus, dialogue, issuer=issuer, settings=web_settings, routers=[api], smtp=smtp
    )
    _attach_slack(app)
    add_service_doors(app, app.state.gateway, timeout=settings.intent_timeout)
    token = web_settings.metrics_token
    add_operational_routes(app, stack, metrics_token=token.get_secret_value() if token else None)
    never_log(web_settings, app)
    return app


def _smtp_settings(make: Callable[[], Any]) -> Any:
    """The SMTP settings of ticket e-mails; an incomplete configuration is a clear error."""
    from pydantic import ValidationError

    try:
        return make()
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigurationError(f"SMTP settings: {reasons}") from None


def never_log(web: Any, app: FastAPI) -> None:
    """Register the gateway's configured secrets with the log redaction (``frontdoor.logs``)."""
    from frontdoor.logs import add_secret

    for secret in (web.session_secret, web.site_token_secret, web.metrics_token):
        add_secret(secret.get_secret_value() if secret is not None else None)
    smtp = getattr(app.state.gateway, "smtp", None)
    if smtp is not None and smtp.password is not None:
        add_secret(smtp.password.get_secret_value())
    slack = getattr(app.state, "slack", None)
    if slack is not None:
        for value in (slack.config.signing_secret, slack.config.bot_token, slack.config.app_token):
            add_secret(value.get_secret_value() if value is not None else None)


def add_operational_routes(app: FastAPI, stack: Stack, *, metrics_token: str | None = None) -> None:
    """``/healthz`` and Prometheus ``/metrics`` (with ``metrics_token``: only for
    ``Authorization: Bearer <metrics_token>``)."""
    bus = stack.bus

    async def healthz() -> JSONResponse:
        ok = bus.connected
        return JSONResponse(
            status_code=200 if ok else 503,
            content={
                "status": "ok" if ok else "nats disconnected",
                "services": [r.service.name for r in stack.runners],
            },
        )

    if not any(getattr(route, "path", None) == "/healthz" for route in app.routes):
        app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    if not any(getattr(route, "path", None) == "/metrics" for route in app.routes):
        from bots.web.docs import BearerProtected

        metrics = make_asgi_app()
        app.mount("/metrics", BearerProtected(metrics, metrics_token) if metrics_token else metrics)


def _attach_slack(app: FastAPI) -> None:
    """Slack on the gateway when SLACK_* is set (see docs/slack.md); a clear error if partial."""
    from bots.slack import SlackConfigError, attach_slack

    try:
        channel = attach_slack(app)
    except SlackConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    if channel is not None:
        log.info("slack channel enabled", mode=channel.config.mode)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the CLI decides how to shut down), calling
    ``on_started`` once it listens, before it serves a single request."""

    on_started: Callable[[], None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # No await between here and the end of start-up: requests already accepted wait until
        # this returns, so they find the start-up announced and its objects frozen.
        if not self.should_exit and self.on_started is not None:
            self.on_started()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def listen(settings: FrontdoorSettings) -> socket.socket:
    """Bind the HTTP port now, so a taken port is a clear error before anything else starts."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc} "
            "(is another Frontdoor running there? choose another one with --port)"
        ) from None
    sock.set_inheritable(True)
    return sock


async def serve_http(
    app: FastAPI,
    settings: FrontdoorSettings,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
    sock: socket.socket,
) -> None:
    """Serve ``app`` on the bound ``sock`` until ``stop`` is set; call ``on_ready(base_url)``."""
    from bots.web.app import uvicorn_limits

    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", **uvicorn_limits(app)
    )
    server = _Server(config)
    port = sock.getsockname()[1]
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host

    def started() -> None:
        freeze_long_lived("the start-up")
        on_ready(f"http://{host}:{port}")

    server.on_started = started
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if task.done():
        raise ConfigurationError(
            f"the web server could not start on {settings.host}:{settings.port} (see the log)"
        )
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    server.should_exit = True
    await task


def _docs_line(app: FastAPI, base: str) -> str:
    """Where the API docs are, or that they are closed (``FRONTDOOR_DOCS=off``)."""
    return f"{base}/docs" if app.openapi_url else "off (FRONTDOOR_DOCS=off)"


def _announce(
    base: str, services: list[str], embedded: bool, split: bool = False, docs: str = ""
) -> None:
    lines = [
        "",
        "Frontdoor is up.",
        f"  web widget : {base}/",
        f"  API docs   : {docs or base + '/docs'}",
        f"  intents API: POST {base}/api/intents/<service>/<action>",
        f"  services   : {', '.join(services) or 'none'}"
        + (" (HTTP doors under /services)" if services else "")
        + (", one process each" if split and services else ""),
        f"  NATS       : {'embedded nats-server' if embedded else 'NATS_URL'}",
        "Press Ctrl+C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _local_secret(path: Path) -> str:
    """A random secret kept in ``path`` (mode 0600), created on first use."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


async def _in_process_health(runner: ServiceRunner) -> dict[str, Any]:
    """A service running in this process: ok while it takes work."""
    return {"ok": runner.running, "process": "in-process"}


async def run_up(settings: FrontdoorSettings, *, split: bool = False) -> None:
    """``frontdoor up``: everything in one process until SIGINT/SIGTERM (with ``split`` each
    service in a child process, see ``frontdoor.processes``)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Services build their own settings from the environment: make them use this data dir.
    data_dir = settings.data_dir.resolve()
    os.environ["FRONTDOOR_DATA_DIR"] = str(data_dir)
    # NLU models live in the data dir too unless configured otherwise.
    os.environ.setdefault("FRONTDOOR_NLU_MODELS_DIR", str(data_dir / "models"))
    os.environ.setdefault("FRONTDOOR_NLU_CACHE_DIR", str(data_dir / "model-cache"))
    # Web session tokens must survive a restart (a reload keeps the conversation).
    if not os.environ.get("FRONTDOOR_SESSION_SECRET"):
        os.environ["FRONTDOOR_SESSION_SECRET"] = _local_secret(data_dir / "session-secret")
    # The claims keys: generated on the first start; services (children too) verify with these.
    _configured(lambda: ensure_local_keys(data_dir))
    os.environ.setdefault(
        "FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE", str(keys_dir(data_dir) / PUBLIC_FILE)
    )
    stop = asyncio.Event()
    sock = listen(settings)
    with _stop_on_signals(stop), contextlib.closing(sock):
        stack = await open_bus(settings, embedded=True, component=GATEWAY)
        try:
            names = settings.selected_services(registry.service_names())
            processes = None
            if split:
                from frontdoor.processes import ServiceProcesses

                processes = ServiceProcesses({name: stack.url_for(name) for name in names})
                stack.closers.append(processes.stop)  # before the nats-server stops
                await processes.start()
            else:
                await start_services(stack, names, data_dir)
            if stop.is_set():
                return
            app = await build_gateway(settings, stack, train_if_missing=True, keys_from=data_dir)
            if processes is not None:
                app.state.gateway.health_checks.update(
                    {name: partial(processes.health, name) for name in names}
                )
            else:
                app.state.gateway.health_checks.update(
                    {r.service.name: partial(_in_process_health, r) for r in stack.runners}
                )
            await serve_http(
                app,
                settings,
                stop,
                lambda base: _announce(
                    base, names, stack.server is not None, split, _docs_line(app, base)
                ),
                sock,
            )
        finally:
            log.info("stopping")
            await stack.aclose()
            log.info("stopped")


async def run_serve(settings: FrontdoorSettings, component: str) -> None:
    """``frontdoor serve <component>``: the gateway or one service, against ``NATS_URL``."""
    names = registry.service_names()
    if component != "gateway" and component not in names:
        raise ConfigurationError(
            f"unknown component {component!r}: use 'gateway' or one of {', '.join(names)}"
        )
    # What a deployment must provide is checked before anything connects.
    if component == "gateway":
        _require_session_secret()
        _configured(lambda: claim_issuer(ClaimKeySettings(), None))
    else:
        _verifier(ClaimKeySettings(), None, component)
    stop = asyncio.Event()
    sock = listen(settings)
    with _stop_on_signals(stop), contextlib.closing(sock):
        stack = await open_bus(settings, embedded=False, component=component)
        try:
            if component == "gateway":
                app = await build_gateway(settings, stack)
                await serve_http(
                    app,
                    settings,
                    stop,
                    lambda base: print(
                        f"gateway serving on {base} (docs: {_docs_line(app, base)})", flush=True
                    ),
                    sock,
                )
            else:
                await start_services(stack, [component], None)
                # Health, metrics and the service's own extra routes; its HTTP door is the
                # gateway's (/services/<component>/...), which forwards signed requests here.
                app = FastAPI(title=f"Frontdoor {component} service")
                add_operational_routes(app, stack)
                await serve_http(
                    app,
                    settings,
                    stop,
                    lambda base: print(
                        f"service {component} is serving intents and requests on NATS "
                        f"(health: {base}/healthz); its HTTP door is the gateway's "
                        f"/services/{component}/...; Ctrl+C to stop",
                        flush=True,
                    ),
                    sock,
                )
        finally:
            await stack.aclose()


def _require_session_secret() -> None:
    """``serve gateway`` shares web sessions across replicas and restarts: it needs the secret."""
    if not os.environ.get("FRONTDOOR_SESSION_SECRET"):
        raise ConfigurationError(
            "FRONTDOOR_SESSION_SECRET is not set: every gateway replica must sign web sessions "
            "with the same secret (32+ random characters, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`), or widgets are logged out on every restart"
        )


def fail(message: str) -> None:
    """Print a configuration error for people and exit 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
