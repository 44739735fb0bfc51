"""Marketing's announcements: post each ``campaign.announced`` event to its Slack channel."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.seen import SeenSet
from events import subjects
from events.bus import Bus
from events.envelope import Envelope

from .client import PERMANENT_ERRORS
from .format import to_mrkdwn
from .relay import CursorRelay

log = logging.getLogger("frontdoor.slack.announce")

ANNOUNCED = "campaign.announced"


class CampaignAnnounced(BaseModel):
    """What the front door reads of marketing's ``campaign.announced`` payload."""

    model_config = ConfigDict(extra="ignore")

    campaign_id: int
    campaign: str
    channel: str
    text: str
    announced_by: str | None = None


class AnnouncementRelay:
    """Follows ``campaign.announced`` and posts each one once, in order, to its channel."""

    def __init__(self, bus: Bus, client: AsyncWebClient, seen: SeenSet) -> None:
        self._client = client
        self.posted = 0
        self.relay = CursorRelay(
            bus,
            seen,
            name="slack_announce",
            filter_subject=subjects.events_filter(channel="slack", envelope_type=ANNOUNCED),
            handler=self._post,
        )

    async def start(self) -> None:
        """Start following the bus."""
        await self.relay.start()

    async def stop(self) -> None:
        """Stop following the bus."""
        await self.relay.stop()

    async def _post(self, _seq: int, env: Envelope) -> None:
        try:
            event = env.payload_as(CampaignAnnounced)
        except ValidationError as exc:
            log.warning("campaign.announced %s does not validate: %s", env.id, exc)
            return
        channel = event.channel.strip()
        by = f" (announced by {event.announced_by})" if event.announced_by else ""
        try:
            await self._client.chat_postMessage(
                channel=channel,
                text=to_mrkdwn(event.text),
                blocks=[
                    {"type": "section", "text": {"type": "mrkdwn", "text": to_mrkdwn(event.text)}},
                    {
                        "type": "context",
                        "elements": [
                            {
                                "type": "mrkdwn",
                                "text": to_mrkdwn(f"Campaign {event.campaign}{by}"),
                            }
                        ],
                    },
                ],
            )
            self.posted += 1
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in PERMANENT_ERRORS:
                log.error(
                    "announcement of campaign %s to %s failed: %s",
                    event.campaign_id,
                    channel,
                    error,
                )
                return
            raise
