"""Socket Mode (development): the same Bolt app over Slack's WebSocket, no public URL needed.

Needs ``SLACK_BOT_TOKEN`` and an app-level ``SLACK_APP_TOKEN`` (``xapp-``, scope
``connections:write``); Slack's Socket Mode handler acknowledges each envelope on the socket.
"""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from .channel import SlackChannel
from .settings import SlackConfigError

log = logging.getLogger("frontdoor.slack.socket")


class SocketModeRunner:
    """Connects a ``SlackChannel``'s Bolt app to Slack over Socket Mode."""

    def __init__(self, channel: SlackChannel) -> None:
        token = channel.config.app_token
        if token is None:
            raise SlackConfigError("Socket Mode needs SLACK_APP_TOKEN (an xapp- app-level token)")
        self.handler = AsyncSocketModeHandler(
            channel.bolt, app_token=token.get_secret_value(), web_client=channel.client
        )

    async def connect(self) -> None:
        """Open the socket (returns once connected; the client reconnects by itself)."""
        await self.handler.connect_async()
        log.info("Slack Socket Mode connected")

    async def close(self) -> None:
        """Close the socket."""
        await self.handler.close_async()
