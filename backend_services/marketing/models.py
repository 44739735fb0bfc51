"""Input and output models of the marketing service's actions (pydantic v2).

Every output model has a ``reply_text()`` a chat user can read; the runtime sends it as the reply.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

CampaignChannel = Literal["slack", "email", "web", "social"]
CampaignStatus = Literal["draft", "scheduled", "active", "paused", "completed", "cancelled"]
LeadStatus = Literal["new", "contacted", "qualified", "converted", "lost"]

#: Lead fields a segment rule may test.
SEGMENT_FIELDS = ("name", "email", "company", "interest", "consent", "status", "campaign", "source")
RuleOp = Literal[
    "eq", "ne", "contains", "not_contains", "startswith", "endswith", "in", "not_in", "exists"
]

_SLACK_CHANNEL = re.compile(r"^(#[a-z0-9][a-z0-9_-]{0,79}|[CGD][A-Z0-9]{6,20})$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def check_email(value: str) -> str:
    """Normalise an email address or raise ``ValueError`` with a message a person understands."""
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"'{value}' is not a valid email address ({exc})") from None
    return checked.normalized.lower()


def check_slack_channel(value: str) -> str:
    """Accept ``#name`` or a Slack channel id, else raise ``ValueError`` saying so."""
    if not _SLACK_CHANNEL.match(value):
        raise ValueError(f"'{value}' is not a Slack channel (use #name or a channel id)")
    return value


Email = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(check_email)]
SlackChannel = Annotated[str, AfterValidator(check_slack_channel)]


class CampaignRef(_In):
    """Names a campaign: its name, or ``#<id>``/``<id>``."""

    campaign: str = Field(min_length=1, max_length=120, description="Campaign name or #id")


class CampaignCreate(_In):
    """``campaign_create``: a new campaign (starts as a draft)."""

    name: str = Field(min_length=2, max_length=120)
    channel: CampaignChannel = "slack"
    message: str = Field(min_length=1, max_length=3000, description="What the campaign says")
    audience_segment: str | None = Field(default=None, max_length=80)
    slack_channel: SlackChannel | None = Field(
        default=None, description="Slack channel for announcements: #name or a channel id"
    )
    scheduled_at: AwareDatetime | None = Field(
        default=None, description="When it starts; set -> status 'scheduled'"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value.lstrip("#").isdigit():
            raise ValueError("a campaign name cannot be only a number")
        return value


class CampaignSchedule(CampaignRef):
    """``campaign_schedule``: start the campaign at ``at`` (must be in the future)."""

    at: AwareDatetime


class CampaignTransition(CampaignRef):
    """``campaign_launch`` / ``campaign_pause`` / ``campaign_resume`` / ``campaign_complete``."""

    reason: str | None = Field(default=None, max_length=300)


class CampaignUpdate(CampaignRef):
    """``campaign_update``: change channel, audience, message or Slack channel."""

    channel: CampaignChannel | None = None
    audience_segment: str | None = Field(default=None, max_length=80)
    message: str | None = Field(default=None, min_length=1, max_length=3000)
    slack_channel: SlackChannel | None = None


class CampaignQuery(_In):
    """``campaign_status`` / ``campaign_stats``: one campaign, or all of them."""

    campaign: str | None = Field(default=None, max_length=120)


class CampaignAnnounce(CampaignRef):
    """``campaign_announce``: post the campaign's message to a Slack channel."""

    slack_channel: SlackChannel | None = Field(
        default=None, description="Defaults to the campaign's own Slack channel"
    )
    text: str | None = Field(default=None, max_length=3000, description="Defaults to the message")


class LeadCapture(_In):
    """``lead_capture``: a lead met in a conversation. ``consent`` must be given explicitly."""

    name: str = Field(min_length=1, max_length=200)
    email: Email
    company: str | None = Field(default=None, max_length=200)
    interest: str | None = Field(default=None, max_length=500)
    consent: bool = Field(description="Did the person agree to be contacted? (no default)")
    campaign: str | None = Field(default=None, max_length=120, description="Campaign name or #id")


class LeadConvert(_In):
    """``lead_convert``: mark a lead as converted (a sale, a signup)."""

    email: Email
    campaign: str | None = Field(default=None, max_length=120)


class SegmentRule(_In):
    """One condition on a lead field.

    E.g. ``{"field": "company", "op": "contains", "value": "acme"}``.
    """

    field: Literal[
        "name", "email", "company", "interest", "consent", "status", "campaign", "source"
    ]
    op: RuleOp = "eq"
    value: Any = None

    @field_validator("value")
    @classmethod
    def _value(cls, value: Any) -> Any:
        if isinstance(value, dict):
            raise ValueError("a rule value is a string, number, boolean or a list of them")
        return value


class SegmentCreate(_In):
    """``segment_create``: a named audience, the leads matching ``rules`` (``all`` or ``any``)."""

    name: str = Field(min_length=2, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _-]*$")
    description: str | None = Field(default=None, max_length=300)
    match: Literal["all", "any"] = "all"
    rules: list[SegmentRule] = Field(min_length=1, max_length=20)


class SegmentPreview(_In):
    """``segment_preview``: how many leads a segment holds (and a few of them)."""

    name: str = Field(min_length=1, max_length=80)
    limit: int = Field(default=5, ge=0, le=50)


# -- outputs ------------------------------------------------------------------------------------


class CampaignOut(BaseModel):
    """A campaign as the service shows it."""

    id: int
    name: str
    channel: str
    status: CampaignStatus
    message: str
    audience_segment: str | None = None
    slack_channel: str | None = None
    scheduled_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
    announcements: int = 0
    note: str | None = None

    def reply_text(self) -> str:
        """One line a chat user can read."""
        when = f", starts {self.scheduled_at:%Y-%m-%d %H:%M} UTC" if self.scheduled_at else ""
        audience = f", audience '{self.audience_segment}'" if self.audience_segment else ""
        text = (
            f"Campaign '{self.name}' (#{self.id}) is {self.status} on {self.channel}"
            f"{audience}{when}."
        )
        return f"{self.note} {text}" if self.note else text


class CampaignList(BaseModel):
    """Several campaigns."""

    campaigns: list[CampaignOut]

    def reply_text(self) -> str:
        """A short list."""
        if not self.campaigns:
            return "There are no campaigns yet."
        lines = [f"{len(self.campaigns)} campaign(s):"]
        lines += [f"- #{c.id} {c.name}: {c.status} on {c.channel}" for c in self.campaigns]
        return "\n".join(lines)


class CampaignStats(BaseModel):
    """Leads and conversions of one campaign."""

    id: int
    name: str
    status: str
    leads: int
    consented_leads: int
    converted: int
    conversion_rate: float = Field(description="converted / leads (0 when no leads)")
    announcements: int

    def reply_text(self) -> str:
        """The numbers in a sentence."""
        return (
            f"Campaign '{self.name}' ({self.status}): {self.leads} lead(s), "
            f"{self.converted} converted ({self.conversion_rate:.0%} conversion), "
            f"{self.announcements} announcement(s)."
        )


class CampaignStatsList(BaseModel):
    """Stats of several campaigns."""

    campaigns: list[CampaignStats]

    def reply_text(self) -> str:
        """One line per campaign."""
        if not self.campaigns:
            return "There are no campaigns yet."
        return "\n".join(c.reply_text() for c in self.campaigns)


class AnnounceOut(BaseModel):
    """What was posted where."""

    campaign: str
    slack_channel: str
    text: str
    event_seq: int

    def reply_text(self) -> str:
        """Confirmation."""
        return f"Announced campaign '{self.campaign}' in {self.slack_channel}."


class LeadErase(_In):
    """``lead_erase`` (admins): erase the lead with this email (a person's erasure request)."""

    email: Email


class LeadErasedOut(BaseModel):
    """How many leads went (0 or 1: a lead's email is unique)."""

    leads: int

    def reply_text(self) -> str:
        """A count, never the address."""
        return f"Erased {self.leads} lead(s)."


class LeadOut(BaseModel):
    """A lead as the service shows it.

    A caller who is neither the marketing team nor the lead's verified owner gets back only what
    they sent (no ``id``, ``created`` unknown): whether that email was already a lead is not
    theirs to learn.
    """

    id: int | None
    name: str
    email: str
    company: str | None = None
    interest: str | None = None
    consent: bool
    status: LeadStatus
    campaign: str | None = None
    source: str | None = None
    created: bool | None = Field(
        default=True,
        description="False when an existing lead was updated; null when not the caller's to know",
    )

    def reply_text(self) -> str:
        """Thank the person and say what happens with their data."""
        who = self.name.split()[0] if self.name else "there"
        if self.status == "converted" and not self.created:
            return f"Lead {self.email} is marked as converted."
        contact = (
            "Someone from our team will get in touch."
            if self.consent
            else "You did not agree to be contacted, so we will not send you marketing messages."
        )
        verb = "Thanks, I updated your details" if self.created is False else "Thanks"
        return f"{verb}, {who}! We noted {self.email}. {contact}"


class SegmentOut(BaseModel):
    """A segment and how many leads it holds."""

    name: str
    description: str | None = None
    match: str
    rules: list[SegmentRule]
    size: int
    sample: list[LeadOut] = Field(default_factory=list)

    def reply_text(self) -> str:
        """Its size in a sentence."""
        rules = f" {self.match} of: " + "; ".join(
            f"{r.field} {r.op} {r.value!r}" for r in self.rules
        )
        return f"Segment '{self.name}' holds {self.size} lead(s) ({rules.strip()})."
