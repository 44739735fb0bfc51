"""Payloads of the domain events the marketing service emits on ``FD_EVENTS``.

- ``campaign.created``, ``campaign.updated``: CampaignChanged, the request's conversation.
- ``campaign.scheduled|launched|paused|resumed|completed|cancelled``: CampaignChanged, the
  request's conversation (launches by the scheduler: conversation ``system``/``marketing``).
- ``campaign.announced``: CampaignAnnounced, conversation ``slack``/<the target Slack channel>.
- ``lead.captured``, ``lead.converted``: LeadCaptured, the request's conversation.
- ``lead.erased``: LeadErased (a count only), the request's conversation.
- ``segment.created``: SegmentCreated, the request's conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CampaignChanged(_Event):
    """A campaign was created, changed, or moved through its lifecycle."""

    campaign_id: int
    name: str
    status: str
    previous_status: str | None = None
    channel: str
    audience_segment: str | None = None
    scheduled_at: datetime | None = None


class CampaignAnnounced(_Event):
    """Post ``text`` to the Slack channel ``channel`` (delivered by the front door's Slack side).

    ``channel`` is ``#name`` or a Slack channel id; the envelope's conversation is
    ``Conversation(channel="slack", id=channel)``.
    """

    campaign_id: int
    campaign: str
    channel: str = Field(description="Slack channel: #name or channel id")
    text: str
    announced_by: str | None = None


class LeadCaptured(_Event):
    """A lead was captured (``created``: new, else updated) or converted."""

    lead_id: int
    name: str
    email: str
    company: str | None = None
    interest: str | None = None
    consent: bool
    status: str
    campaign_id: int | None = None
    campaign: str | None = None
    source: str | None = None
    created: bool = True


class LeadErased(_Event):
    """A person's leads were erased (``lead_erase``): how many, never who."""

    leads: int


class SegmentCreated(_Event):
    """A new audience segment."""

    name: str
    match: str
    rules: list[dict[str, Any]]
    size: int
