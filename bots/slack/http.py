"""Mount the Slack Events API on the gateway: ``POST /slack/events`` through Bolt's adapter.

Every request's ``X-Slack-Request-Timestamp`` must be a number and its ``X-Slack-Signature``
(v0 HMAC-SHA256 of the body with the signing secret, at most 5 minutes old) valid, else ``401``
(checked here with slack_sdk's verifier, and again by Bolt). A signed body that is not what
Slack sends (``bots.slack.payloads``) is a ``400``; only then does Bolt take the request.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bots.handoff import HandoffDecliner
from events.bus import Bus

from .channel import SlackChannel, TurnHandler
from .payloads import InvalidSlackBody, check_slack_body
from .settings import SlackConfigError, SlackSettings
from .socket_mode import SocketModeRunner

log = logging.getLogger("frontdoor.slack")

EVENTS_PATH = "/slack/events"
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_MAX_DEPTH = 32


def _refuse(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


def build_slack_channel(
    settings: SlackSettings | None,
    *,
    bus: Bus,
    turns: TurnHandler,
    socket_mode: bool | None = None,
) -> SlackChannel | None:
    """The Slack channel, or ``None`` when Slack is not configured at all.

    Raises ``SlackConfigError`` (a clear start-up error) when the configuration is partial.
    """
    config = (settings or SlackSettings()).resolve(socket_mode=socket_mode)
    if config is None:
        return None
    return SlackChannel(config, bus=bus, turns=turns)


def create_slack_router(channel: SlackChannel, path: str = EVENTS_PATH) -> APIRouter:
    """An ``APIRouter`` with ``POST <path>`` (Events API, slash commands, interactivity)."""
    handler = AsyncSlackRequestHandler(channel.bolt)
    secret = channel.config.signing_secret
    verifier = SignatureVerifier(secret.get_secret_value() if secret else "")
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        peer = request.client.host if request.client else "?"
        body = await request.body()
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not _TIMESTAMP.match(timestamp):
            log.warning("rejected a Slack request from %s: no valid timestamp", peer)
            return _refuse(401, "X-Slack-Request-Timestamp must be a Unix time in seconds")
        if not verifier.is_valid(body, timestamp, signature):
            log.warning("rejected a Slack request from %s: invalid or stale signature", peer)
            return _refuse(401, "invalid or stale Slack signature")
        try:
            check_slack_body(body, request.headers.get("content-type", ""), _MAX_DEPTH)
        except InvalidSlackBody as exc:
            log.warning("refused a signed Slack request from %s: %s", peer, exc)
            return _refuse(400, str(exc))
        response = await handler.handle(request)
        if response.status_code == 404:
            # Bolt has no listener for it (an event type nobody subscribes to act on): taken,
            # nothing to do. A non-2xx answer would only make Slack send it again.
            return Response(status_code=200)
        return response

    return router


def mount_slack(app: FastAPI, channel: SlackChannel, path: str = EVENTS_PATH) -> None:
    """Serve ``channel`` at ``path`` on ``app`` (start/stop the channel in the app's lifespan)."""
    app.include_router(create_slack_router(channel, path))


def attach_slack(
    app: FastAPI,
    settings: SlackSettings | None = None,
    *,
    socket_mode: bool | None = None,
    path: str = EVENTS_PATH,
) -> SlackChannel | None:
    """Add Slack to a gateway app built by ``bots.web.app.create_gateway_app``.

    Uses ``app.state.gateway`` (its bus, turn pipeline, reply router and start/stop hooks):
    registers the ``slack`` reply adapter, mounts ``POST <path>`` (or, in Socket Mode --
    ``socket_mode=True`` or ``FRONTDOOR_SLACK_SOCKET_MODE=1`` -- connects at start-up) and
    starts/stops the channel with the gateway.
    Returns the channel (also ``app.state.slack``), or ``None`` when Slack is not configured
    (then, unless the agent workspace is on, hand-off requests are answered "no human agent can
    be reached" and never silence the bot); raises ``SlackConfigError`` when it is only partly
    configured.
    """
    gateway = app.state.gateway
    channel = build_slack_channel(
        settings, bus=gateway.bus, turns=gateway.pipeline.handle, socket_mode=socket_mode
    )
    workspace = bool(getattr(gateway, "workspace", None))
    if channel is None:
        if workspace:
            return None  # agents answer hand-offs in the workspace (/agent)
        # No human can take a hand-off: never let one silence the bot, tell the user instead.
        gateway.handoff.available = False
        decliner = HandoffDecliner(gateway.bus)
        gateway.on_start.append(decliner.start)
        gateway.on_stop.append(decliner.stop)
        return None
    bots = getattr(gateway, "bots", None)
    if bots is not None:
        for bot in {channel.config.default_bot, *channel.config.channel_bots.values()}:
            if bot not in bots:
                raise SlackConfigError(
                    f"Slack is configured to use the bot {bot!r}, which does not exist; "
                    f"choose one of: {', '.join(bots.names())}"
                )
    channel.workspace = workspace
    gateway.router.register("slack", channel)
    gateway.on_start.append(channel.start)
    gateway.on_stop.append(channel.stop)
    if channel.config.mode == "socket":
        runner = SocketModeRunner(channel)
        gateway.on_start.append(runner.connect)
        gateway.on_stop.append(runner.close)
    else:
        mount_slack(app, channel, path)
    app.state.slack = channel
    return channel
