"""The marketing service: campaigns, leads captured from conversations, segments, announcements.

Roles: ``lead_capture`` is open to every chat user (``user``, ``agent``, ``admin``); every
management action (campaigns, segments, stats, conversions, announcements) needs ``agent`` or
``admin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from backend_services.marketing.domain_events import (
    CampaignAnnounced,
    CampaignChanged,
    LeadCaptured,
    LeadErased,
    SegmentCreated,
)
from backend_services.marketing.lifecycle import EVENT_OF, TransitionRefused
from backend_services.marketing.models import (
    AnnounceOut,
    CampaignAnnounce,
    CampaignCreate,
    CampaignList,
    CampaignOut,
    CampaignQuery,
    CampaignSchedule,
    CampaignStats,
    CampaignStatsList,
    CampaignTransition,
    CampaignUpdate,
    LeadCapture,
    LeadConvert,
    LeadErase,
    LeadErasedOut,
    LeadOut,
    SegmentCreate,
    SegmentOut,
    SegmentPreview,
    SegmentRule,
)
from backend_services.marketing.settings import MarketingSettings
from backend_services.marketing.store import Campaign, Conflict, Lead, MarketingStore, NotFound
from backend_services.runtime import HandlerContext, HandlerError, Service, ServiceContext
from backend_services.runtime.instances import refuse_a_second_sqlite_instance
from backend_services.runtime.outbox import OutboxRelay
from events.envelope import SYSTEM_ACTOR, Conversation, Envelope

log = logging.getLogger("frontdoor.marketing")

service = Service(
    "marketing", version="0.1.0", description="Campaigns, leads, segments and announcements"
)

#: Guests (widget and REST visitors nobody identified) may leave their details too.
ANYONE = {"guest", "user", "agent", "admin"}
MANAGERS = {"agent", "admin"}
ADMINS = {"admin"}


def _store(ctx: HandlerContext) -> MarketingStore:
    return ctx.state["store"]  # type: ignore[no-any-return]


def _relay(ctx: HandlerContext) -> OutboxRelay:
    return ctx.state["relay"]  # type: ignore[no-any-return]


OutT = TypeVar("OutT", bound=BaseModel)
Change = Callable[[], Awaitable[tuple[BaseModel, list[Envelope]]]]


async def apply_once(
    ctx: HandlerContext, out: type[OutT], change: Change
) -> tuple[OutT, list[int]]:
    """Run ``change`` (store calls, then the answer and the events' envelopes) in one
    transaction, once per intent or request id; publish the events after the commit.

    A redelivery (or a retried request with the same id) is answered from the record and its
    events published again (the bus keeps one copy): "name taken" never answers a campaign this
    very request created. Returns the answer and the events' bus sequences.
    """
    store = _store(ctx)
    request_id = str(ctx.envelope.id)
    try:
        async with store.once(request_id, ctx.action, ctx.now()) as once:
            if once.recorded is None:
                with domain_errors():
                    output, envelopes = await change()
                once.record(output.model_dump(mode="json"), envelopes)
            recorded = once.recorded or (once.result, once.envelopes)
    except IntegrityError:
        found = await store.recorded(request_id)  # a concurrent delivery committed first
        if found is None:
            raise
        recorded = found
    answer, envelopes = recorded
    seqs = await _relay(ctx).publish(request_id, envelopes)
    return out.model_validate(answer), seqs


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Turn the store's refusals into answers the user sees (not retried)."""
    try:
        yield
    except (NotFound, Conflict, TransitionRefused) as exc:
        raise HandlerError(str(exc)) from None


def campaign_out(campaign: Campaign, note: str | None = None) -> CampaignOut:
    """The output model of a stored campaign."""
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        channel=campaign.channel,
        status=campaign.status,  # type: ignore[arg-type]
        message=campaign.message,
        audience_segment=campaign.audience_segment,
        slack_channel=campaign.slack_channel,
        scheduled_at=campaign.scheduled_at,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
        created_by=campaign.created_by,
        announcements=campaign.announcements,
        note=note,
    )


def lead_out(lead: Lead, created: bool = True) -> LeadOut:
    """The output model of a stored lead."""
    return LeadOut(
        id=lead.id,
        name=lead.name,
        email=lead.email,
        company=lead.company,
        interest=lead.interest,
        consent=lead.consent,
        status=lead.status,  # type: ignore[arg-type]
        campaign=lead.campaign.name if lead.campaign else None,
        source=lead.source,
        created=created,
    )


def _changed(campaign: Campaign, previous: str | None = None) -> CampaignChanged:
    return CampaignChanged(
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        previous_status=previous,
        channel=campaign.channel,
        audience_segment=campaign.audience_segment,
        scheduled_at=campaign.scheduled_at,
    )


def _lead_event(lead: Lead, created: bool) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead.id,
        name=lead.name,
        email=lead.email,
        company=lead.company,
        interest=lead.interest,
        consent=lead.consent,
        status=lead.status,
        campaign_id=lead.campaign_id,
        campaign=lead.campaign.name if lead.campaign else None,
        source=lead.source,
        created=created,
    )


# -- lifecycle hooks -------------------------------------------------------------------------


async def start_due_campaigns(ctx: ServiceContext) -> int:
    """Activate scheduled campaigns whose time has come; publish ``campaign.launched`` for each."""
    store: MarketingStore = ctx.state["store"]
    started = await store.due_campaigns(ctx.now())
    for campaign in started:
        event_id = uuid.uuid5(
            uuid.NAMESPACE_URL,
            f"frontdoor:marketing:{campaign.id}:launched:{campaign.scheduled_at}",
        )
        await ctx.bus.publish(
            Envelope.new(
                "campaign.launched",
                _changed(campaign, "scheduled"),
                conversation=Conversation(channel="system", id="marketing"),
                actor=SYSTEM_ACTOR,
                id=event_id,
            )
        )
    return len(started)


async def _scheduler(ctx: ServiceContext, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await start_due_campaigns(ctx)
        except Exception:  # a failed round is retried on the next tick
            log.exception("starting due campaigns failed")


@service.on_startup
async def open_store(ctx: ServiceContext) -> None:
    """Open the database (create tables) and start the campaign scheduler."""
    settings = ctx.settings if isinstance(ctx.settings, MarketingSettings) else MarketingSettings()
    url = settings.resolved_database_url()
    if make_url(url).get_backend_name() == "sqlite":
        await refuse_a_second_sqlite_instance(
            ctx, "FRONTDOOR_DATABASE_URL (or FRONTDOOR_MARKETING_DATABASE_URL)"
        )
    store = await MarketingStore.open(url)
    ctx.state["store"] = store
    relay = OutboxRelay(ctx.bus, store.unpublished, store.mark_published, clock=ctx.now)
    await relay.start()
    ctx.state["relay"] = relay
    ctx.state["scheduler"] = asyncio.create_task(
        _scheduler(ctx, settings.scheduler_interval_seconds), name="marketing-scheduler"
    )


@service.on_shutdown
async def close_store(ctx: ServiceContext) -> None:
    """Stop the scheduler and close the database."""
    task = ctx.state.pop("scheduler", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    relay = ctx.state.pop("relay", None)
    if relay is not None:
        await relay.stop()
    store = ctx.state.pop("store", None)
    if store is not None:
        await store.close()


# -- campaigns -----------------------------------------------------------------------------


@service.handler("campaign_create", roles=MANAGERS, summary="Create a campaign (draft/scheduled)")
async def campaign_create(payload: CampaignCreate, ctx: HandlerContext) -> CampaignOut:
    """Create a campaign; with ``scheduled_at`` it is scheduled, else a draft."""

    async def change() -> tuple[BaseModel, list[Envelope]]:
        campaign = await _store(ctx).create_campaign(
            ctx.now(), ctx.actor.id, **payload.model_dump(exclude_none=True)
        )
        return campaign_out(campaign, note="Created."), [
            ctx.event(1, "campaign.created", _changed(campaign))
        ]

    return (await apply_once(ctx, CampaignOut, change))[0]


@service.handler("campaign_update", roles=MANAGERS, summary="Change a campaign's settings")
async def campaign_update(payload: CampaignUpdate, ctx: HandlerContext) -> CampaignOut:
    """Change channel, audience segment, message or Slack channel."""
    changes = payload.model_dump(exclude={"campaign"}, exclude_none=True)
    if not changes:
        raise HandlerError(
            "Tell me what to change: channel, audience_segment, message or slack_channel."
        )

    async def change() -> tuple[BaseModel, list[Envelope]]:
        campaign = await _store(ctx).update_campaign(payload.campaign, ctx.now(), **changes)
        return campaign_out(campaign, note="Updated."), [
            ctx.event(1, "campaign.updated", _changed(campaign, campaign.status))
        ]

    return (await apply_once(ctx, CampaignOut, change))[0]


async def _transition(ctx: HandlerContext, ref: str, action: str, at: object = None) -> CampaignOut:
    async def change() -> tuple[BaseModel, list[Envelope]]:
        campaign, previous = await _store(ctx).transition(ref, action, ctx.now(), at)  # type: ignore[arg-type]
        return campaign_out(campaign), [
            ctx.event(1, EVENT_OF[action], _changed(campaign, previous))
        ]

    return (await apply_once(ctx, CampaignOut, change))[0]


@service.handler("campaign_schedule", roles=MANAGERS, summary="Schedule a campaign's start")
async def campaign_schedule(payload: CampaignSchedule, ctx: HandlerContext) -> CampaignOut:
    """Start the campaign at ``at`` (future); the scheduler activates it then."""
    return await _transition(ctx, payload.campaign, "schedule", payload.at)


@service.handler("campaign_launch", roles=MANAGERS, summary="Start a campaign now")
async def campaign_launch(payload: CampaignTransition, ctx: HandlerContext) -> CampaignOut:
    """Draft or scheduled -> active."""
    return await _transition(ctx, payload.campaign, "launch")


@service.handler("campaign_pause", roles=MANAGERS, summary="Pause a campaign")
async def campaign_pause(payload: CampaignTransition, ctx: HandlerContext) -> CampaignOut:
    """Scheduled or active -> paused."""
    return await _transition(ctx, payload.campaign, "pause")


@service.handler("campaign_resume", roles=MANAGERS, summary="Resume a paused campaign")
async def campaign_resume(payload: CampaignTransition, ctx: HandlerContext) -> CampaignOut:
    """Paused -> active."""
    return await _transition(ctx, payload.campaign, "resume")


@service.handler("campaign_complete", roles=MANAGERS, summary="Finish a campaign")
async def campaign_complete(payload: CampaignTransition, ctx: HandlerContext) -> CampaignOut:
    """Active or paused -> completed (final)."""
    return await _transition(ctx, payload.campaign, "complete")


@service.handler("campaign_cancel", roles=MANAGERS, summary="Cancel a campaign")
async def campaign_cancel(payload: CampaignTransition, ctx: HandlerContext) -> CampaignOut:
    """Draft, scheduled or paused -> cancelled (final)."""
    return await _transition(ctx, payload.campaign, "cancel")


@service.handler("campaign_status", roles=MANAGERS, summary="Status of one or all campaigns")
async def campaign_status(payload: CampaignQuery, ctx: HandlerContext) -> CampaignList:
    """One campaign's status, or every campaign's."""
    store = _store(ctx)
    with domain_errors():
        if payload.campaign:
            return CampaignList(
                campaigns=[campaign_out(await store.get_campaign(payload.campaign))]
            )
    return CampaignList(campaigns=[campaign_out(c) for c in await store.list_campaigns()])


@service.handler("campaign_stats", roles=MANAGERS, summary="Leads and conversion per campaign")
async def campaign_stats(payload: CampaignQuery, ctx: HandlerContext) -> CampaignStatsList:
    """Leads captured for each campaign, how many converted, how often it was announced."""
    store = _store(ctx)
    with domain_errors():
        campaigns = (
            [await store.get_campaign(payload.campaign)]
            if payload.campaign
            else await store.list_campaigns()
        )
    counts = await asyncio.gather(*(store.campaign_stats(c) for c in campaigns))
    return CampaignStatsList(
        campaigns=[
            CampaignStats(
                id=c.id,
                name=c.name,
                status=c.status,
                leads=n["leads"],
                consented_leads=n["consented"],
                converted=n["converted"],
                conversion_rate=(n["converted"] / n["leads"]) if n["leads"] else 0.0,
                announcements=c.announcements,
            )
            for c, n in zip(campaigns, counts, strict=True)
        ]
    )


@service.handler("campaign_announce", roles=MANAGERS, summary="Post a campaign to a Slack channel")
async def campaign_announce(payload: CampaignAnnounce, ctx: HandlerContext) -> AnnounceOut:
    """Emit ``campaign.announced`` on the Slack channel's conversation; the front door posts it."""
    store = _store(ctx)
    with domain_errors():
        campaign = await store.get_campaign(payload.campaign)
    if campaign.status in ("completed", "cancelled"):
        raise HandlerError(f"Campaign '{campaign.name}' is {campaign.status}: nothing to announce.")
    channel = payload.slack_channel or campaign.slack_channel
    if not channel:
        raise HandlerError(
            f"Which Slack channel? Campaign '{campaign.name}' has none: give slack_channel."
        )
    text = payload.text or campaign.message
    event = CampaignAnnounced(
        campaign_id=campaign.id,
        campaign=campaign.name,
        channel=channel,
        text=text,
        announced_by=ctx.actor.name or ctx.actor.id,
    )
    # Not ctx.event: the event belongs to the Slack channel's conversation, not the requester's.
    announced = Envelope.new(
        "campaign.announced",
        event,
        conversation=Conversation(channel="slack", id=channel),
        actor=ctx.actor,
        correlation_id=ctx.correlation_id,
        causation_id=ctx.envelope.id,
        id=uuid.uuid5(ctx.envelope.id, "campaign.announced"),
    )

    async def change() -> tuple[BaseModel, list[Envelope]]:
        await store.count_announcement(campaign.id, ctx.now())
        out = AnnounceOut(campaign=campaign.name, slack_channel=channel, text=text, event_seq=0)
        return out, [announced]

    out, seqs = await apply_once(ctx, AnnounceOut, change)
    return out.model_copy(update={"event_seq": seqs[0]})


# -- leads ---------------------------------------------------------------------------------


@service.handler("lead_capture", roles=ANYONE, summary="Capture a lead (with explicit consent)")
async def lead_capture(payload: LeadCapture, ctx: HandlerContext) -> LeadOut:
    """Store (or update, by email) a lead met in a conversation; emit ``lead.captured``.

    An existing lead's details (name, company, consent) change only for the marketing team or
    the person whose email the caller's claim verified; anyone else's capture of a known email
    changes nothing, and nobody but those two learns whether the email was known.
    """
    conv = ctx.envelope.conversation
    verified = ctx.verified_email
    owner = verified is not None and verified.lower() == payload.email.lower()
    privileged = ctx.actor.has_any(MANAGERS) or owner

    async def change() -> tuple[BaseModel, list[Envelope]]:
        lead, created = await _store(ctx).capture_lead(
            ctx.now(),
            payload.campaign,
            f"{conv.channel}:{conv.id}",
            may_update=privileged,
            **payload.model_dump(exclude={"campaign"}),
        )
        events = [] if lead is None else [ctx.event(1, "lead.captured", _lead_event(lead, created))]
        if privileged and lead is not None:
            return lead_out(lead, created), events
        return _echo(payload), events

    return (await apply_once(ctx, LeadOut, change))[0]


def _echo(payload: LeadCapture) -> LeadOut:
    """What an unprivileged caller gets back: only what it sent."""
    return LeadOut(
        id=None,
        name=payload.name,
        email=payload.email,
        company=payload.company,
        interest=payload.interest,
        consent=payload.consent,
        status="new",
        campaign=payload.campaign,
        source=None,
        created=None,
    )


@service.handler("lead_convert", roles=MANAGERS, summary="Mark a lead as converted")
async def lead_convert(payload: LeadConvert, ctx: HandlerContext) -> LeadOut:
    """The lead bought or signed up; counts toward its campaign's conversion."""

    async def change() -> tuple[BaseModel, list[Envelope]]:
        lead = await _store(ctx).convert_lead(payload.email, payload.campaign, ctx.now())
        return lead_out(lead, created=False), [
            ctx.event(1, "lead.converted", _lead_event(lead, False))
        ]

    return (await apply_once(ctx, LeadOut, change))[0]


@service.handler("lead_erase", roles=ADMINS, summary="Erase a person's lead (by email)")
async def lead_erase(payload: LeadErase, ctx: HandlerContext) -> LeadErasedOut:
    """Deletes the lead with this email (a person's erasure, ``frontdoor erase user``); emits
    ``lead.erased`` with the count only."""

    async def change() -> tuple[BaseModel, list[Envelope]]:
        leads = await _store(ctx).erase_lead(payload.email)
        event = ctx.event(1, "lead.erased", LeadErased(leads=leads))
        return LeadErasedOut(leads=leads), [event]

    return (await apply_once(ctx, LeadErasedOut, change))[0]


# -- segments ------------------------------------------------------------------------------


async def _segment_out(store: MarketingStore, name: str, limit: int) -> SegmentOut:
    segment = await store.get_segment(name)
    size, sample = await store.segment_members(segment, limit)
    return SegmentOut(
        name=segment.name,
        description=segment.description,
        match=segment.match,
        rules=[SegmentRule.model_validate(r) for r in segment.rules],
        size=size,
        sample=[lead_out(lead) for lead in sample],
    )


@service.handler("segment_create", roles=MANAGERS, summary="Define an audience segment")
async def segment_create(payload: SegmentCreate, ctx: HandlerContext) -> SegmentOut:
    """A named set of rules over lead fields (all or any must hold)."""
    store = _store(ctx)

    async def change() -> tuple[BaseModel, list[Envelope]]:
        await store.create_segment(
            payload.name, payload.description, payload.match, payload.rules, ctx.now()
        )
        out = await _segment_out(store, payload.name, 0)
        created = SegmentCreated(
            name=out.name,
            match=out.match,
            rules=[r.model_dump(mode="json") for r in out.rules],
            size=out.size,
        )
        return out, [ctx.event(1, "segment.created", created)]

    return (await apply_once(ctx, SegmentOut, change))[0]


@service.handler("segment_preview", roles=MANAGERS, summary="Size and sample of a segment")
async def segment_preview(payload: SegmentPreview, ctx: HandlerContext) -> SegmentOut:
    """How many leads a segment holds now, with the first few."""
    with domain_errors():
        return await _segment_out(_store(ctx), payload.name, payload.limit)
