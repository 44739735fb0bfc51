"""The Slack channel: Bolt ``AsyncApp`` (Events API over HTTP, or Socket Mode), reply delivery,
human hand-off threads and marketing announcements.

Wiring: ``attach_slack(app)`` on an app built by ``bots.web.app.create_gateway_app`` does it all
(``None`` when Slack is not configured). By hand::

    slack = build_slack_channel(SlackSettings(), bus=bus, turns=pipeline.handle)
    if slack is not None:
        mount_slack(app, slack)               # POST /slack/events
        router.register("slack", slack)       # replies -> chat.postMessage
        await slack.start()                   # on start-up; await slack.stop() on shutdown
"""

from .channel import SlackChannel, TurnHandler
from .http import (
    EVENTS_PATH,
    attach_slack,
    build_slack_channel,
    create_slack_router,
    mount_slack,
)
from .settings import ResolvedSlack, SlackConfigError, SlackSettings
from .socket_mode import SocketModeRunner

__all__ = [
    "EVENTS_PATH",
    "ResolvedSlack",
    "SlackChannel",
    "SlackConfigError",
    "SlackSettings",
    "SocketModeRunner",
    "TurnHandler",
    "attach_slack",
    "build_slack_channel",
    "create_slack_router",
    "mount_slack",
]
