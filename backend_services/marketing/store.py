"""The marketing service's own data: campaigns, leads, segments (SQLAlchemy async).

SQLite by default, PostgreSQL by URL. Tables are created at start (``create_all``); their names
carry a ``marketing_`` prefix so the service can share a database with others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
    delete,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from backend_services.marketing.lifecycle import next_status
from backend_services.marketing.models import SegmentRule
from backend_services.runtime import outbox_sql
from backend_services.runtime.outbox import envelopes_from_json, envelopes_json
from backend_services.runtime.sql import UTCDateTime, create_engine
from events.envelope import Envelope

#: The session of the change being applied once (``MarketingStore.once``): store methods called
#: inside it join its transaction instead of opening their own.
#: Key of the PostgreSQL advisory lock that serialises concurrent start-ups' table creation.
_SCHEMA_LOCK = 0x6D6B7467  # "mktg"
_AMBIENT: ContextVar[AsyncSession | None] = ContextVar("marketing_session", default=None)


class Base(DeclarativeBase):
    """Declarative base of the marketing tables."""


class Campaign(Base):
    """A marketing campaign."""

    __tablename__ = "marketing_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    message: Mapped[str] = mapped_column(Text)
    audience_segment: Mapped[str | None] = mapped_column(String(80), nullable=True)
    slack_channel: Mapped[str | None] = mapped_column(String(100), nullable=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    announcements: Mapped[int] = mapped_column(Integer, default=0)


class Lead(Base):
    """A person who showed interest, with their explicit consent flag."""

    __tablename__ = "marketing_leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200), nullable=True)
    interest: Mapped[str | None] = mapped_column(String(500), nullable=True)
    consent: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20), default="new")
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("marketing_campaigns.id"), nullable=True
    )
    source: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    campaign: Mapped[Campaign | None] = relationship(lazy="joined")


class Segment(Base):
    """A named audience: rules over lead fields."""

    __tablename__ = "marketing_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str | None] = mapped_column(String(300), nullable=True)
    match: Mapped[str] = mapped_column(String(3), default="all")
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NotFound(LookupError):
    """No such campaign, lead or segment."""


class Conflict(ValueError):
    """The name is taken, or the change breaks a rule."""


def _rule_clause(rule: SegmentRule) -> ColumnElement[bool]:
    column: Any
    if rule.field == "campaign":
        column = Campaign.name
    else:
        column = getattr(Lead, rule.field)
    value = rule.value
    if rule.op == "exists":
        present = column.is_not(None)
        return present if value in (None, True, "true", "yes") else column.is_(None)
    if rule.field == "consent":
        flag = value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1")
        return column.is_(flag) if rule.op == "eq" else column.is_not(flag)
    if rule.op in ("in", "not_in"):
        values = [str(v).lower() for v in (value if isinstance(value, list) else [value])]
        clause = func.lower(column).in_(values)
        return clause if rule.op == "in" else or_(column.is_(None), not_(clause))
    text = str(value or "").lower()
    low = func.lower(column)
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if rule.op == "eq":
        return low == text
    if rule.op == "ne":
        return or_(column.is_(None), low != text)
    if rule.op == "contains":
        return low.like(f"%{escaped}%", escape="\\")
    if rule.op == "not_contains":
        return or_(column.is_(None), not_(low.like(f"%{escaped}%", escape="\\")))
    if rule.op == "startswith":
        return low.like(f"{escaped}%", escape="\\")
    if rule.op == "endswith":
        return low.like(f"%{escaped}", escape="\\")
    raise ValueError(f"unknown operator {rule.op}")


def segment_clause(rules: list[SegmentRule], match: str) -> ColumnElement[bool]:
    """The SQL condition selecting the leads of a segment."""
    clauses = [_rule_clause(r) for r in rules]
    return and_(*clauses) if match == "all" else or_(*clauses)


class ProcessedRequest(Base):
    """An intent or request already applied, with its answer, and the outbox of its events.

    Written in the same transaction as the change: a redelivery is answered from ``result`` and
    its events published again (the bus drops repeats); ``published_at`` stays empty until the
    events were published, so the relay publishes them when that failed after the commit.
    """

    __tablename__ = "marketing_processed_requests"
    __table_args__ = (
        Index("ix_marketing_processed_requests_published_at", "published_at"),
        Index("ix_marketing_processed_requests_created_at", "created_at"),
    )

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass
class Once:
    """A change being applied once: ``recorded`` holds a previous application's answer and
    envelopes (then nothing is changed); otherwise ``record`` them."""

    recorded: tuple[dict[str, Any], list[Envelope]] | None = None
    result: dict[str, Any] = field(default_factory=dict)
    envelopes: list[Envelope] = field(default_factory=list)

    def record(self, result: dict[str, Any], envelopes: list[Envelope]) -> None:
        """What this application answers and emits (stored with the change)."""
        self.result, self.envelopes = result, envelopes


class MarketingStore:
    """Campaigns, leads and segments in one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> MarketingStore:
        """Connect to ``url`` and create the tables if missing."""
        engine = create_engine(url)
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # instances starting together would race to create the same tables
                await conn.execute(
                    sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK}
                )
            await conn.run_sync(Base.metadata.create_all)
        return cls(engine)

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction (committed on success); inside ``once``, its session."""
        ambient = _AMBIENT.get()
        if ambient is not None:
            yield ambient
            await ambient.flush()  # ids and defaults are known when the block returns
            return
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def once(self, request_id: str, action: str, now: datetime) -> AsyncIterator[Once]:
        """Apply a change once per ``request_id``: one transaction for the store calls made
        inside, the answer and the events' envelopes (the outbox). A request applied before
        yields its record and changes nothing. A concurrent first application surfaces as
        ``IntegrityError`` at the commit (``recorded`` then finds it)."""
        async with self._sessions() as session, session.begin():
            done = await session.get(ProcessedRequest, request_id)
            if done is not None:
                yield Once(recorded=_record_of(done))
                return
            once = Once()
            token = _AMBIENT.set(session)
            try:
                yield once
            finally:
                _AMBIENT.reset(token)
            session.add(
                ProcessedRequest(
                    request_id=request_id,
                    action=action,
                    result={"answer": once.result, "envelopes": envelopes_json(once.envelopes)},
                    created_at=now,
                )
            )

    async def recorded(self, request_id: str) -> tuple[dict[str, Any], list[Envelope]] | None:
        """The record of ``request_id``, if it was applied."""
        async with self._sessions() as session:
            done = await session.get(ProcessedRequest, request_id)
            return _record_of(done) if done is not None else None

    async def unpublished(
        self, older_than: datetime, limit: int
    ) -> list[tuple[str, list[Envelope]]]:
        """Outbox entries not marked published, oldest first."""
        async with self._sessions() as session:
            return await outbox_sql.fetch_unpublished(session, ProcessedRequest, older_than, limit)

    async def mark_published(self, request_ids: list[str], now: datetime) -> None:
        """Mark outbox entries published."""
        async with self._sessions() as session, session.begin():
            await outbox_sql.mark_published(session, ProcessedRequest, request_ids, now)

    # -- campaigns -----------------------------------------------------------------------------

    async def _campaign(self, session: AsyncSession, ref: str) -> Campaign:
        key = ref.strip()
        if key.lstrip("#").isdigit():
            found = await session.get(Campaign, int(key.lstrip("#")))
        else:
            found = (
                await session.execute(
                    select(Campaign).where(func.lower(Campaign.name) == key.lower())
                )
            ).scalar_one_or_none()
        if found is None:
            raise NotFound(f"There is no campaign '{ref}'.")
        return found

    async def get_campaign(self, ref: str) -> Campaign:
        """A campaign by name or ``#id``."""
        async with self.session() as session:
            return await self._campaign(session, ref)

    async def list_campaigns(self) -> list[Campaign]:
        """Every campaign, oldest first."""
        async with self.session() as session:
            return list((await session.execute(select(Campaign).order_by(Campaign.id))).scalars())

    async def create_campaign(self, now: datetime, created_by: str, **fields: Any) -> Campaign:
        """A new campaign (``draft``, or ``scheduled`` with ``scheduled_at``)."""
        status = "scheduled" if fields.get("scheduled_at") else "draft"
        if fields.get("scheduled_at") and fields["scheduled_at"] <= now:
            raise Conflict("The start time must be in the future.")
        if fields.get("audience_segment"):
            await self.get_segment(fields["audience_segment"])
        campaign = Campaign(
            status=status, created_at=now, updated_at=now, created_by=created_by, **fields
        )
        taken = Conflict(f"A campaign named '{fields['name']}' already exists.")
        try:
            async with self.session() as session:
                same = select(Campaign.id).where(
                    func.lower(Campaign.name) == fields["name"].lower()
                )
                if (await session.execute(same)).first() is not None:
                    raise taken
                session.add(campaign)
        except IntegrityError:
            raise taken from None
        return campaign

    async def update_campaign(self, ref: str, now: datetime, **changes: Any) -> Campaign:
        """Change a campaign's fields (not allowed once completed or cancelled)."""
        if changes.get("audience_segment"):
            await self.get_segment(changes["audience_segment"])
        async with self.session() as session:
            campaign = await self._campaign(session, ref)
            if campaign.status in ("completed", "cancelled"):
                raise Conflict(f"Campaign '{campaign.name}' is {campaign.status}: it is final.")
            for key, value in changes.items():
                if value is not None:
                    setattr(campaign, key, value)
            campaign.updated_at = now
            return campaign

    async def transition(
        self, ref: str, action: str, now: datetime, at: datetime | None = None
    ) -> tuple[Campaign, str]:
        """Apply a lifecycle action; return the campaign and its previous status."""
        async with self.session() as session:
            campaign = await self._campaign(session, ref)
            previous = campaign.status
            campaign.status = next_status(previous, action)
            if action == "schedule":
                if at is None or at <= now:
                    raise Conflict("The start time must be in the future.")
                campaign.scheduled_at = at
            elif action == "launch" and (campaign.scheduled_at is None or previous == "scheduled"):
                campaign.scheduled_at = now
            campaign.updated_at = now
            return campaign, previous

    async def due_campaigns(self, now: datetime) -> list[Campaign]:
        """Scheduled campaigns whose start time has come, now marked active."""
        async with self.session() as session:
            rows = (
                await session.execute(
                    select(Campaign)
                    .where(Campaign.status == "scheduled", Campaign.scheduled_at <= now)
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
            started = []
            for campaign in rows:
                campaign.status = "active"
                campaign.updated_at = now
                started.append(campaign)
            return started

    async def count_announcement(self, campaign_id: int, now: datetime) -> None:
        """One more announcement of a campaign."""
        async with self.session() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is not None:
                campaign.announcements += 1
                campaign.updated_at = now

    async def campaign_stats(self, campaign: Campaign) -> dict[str, int]:
        """Leads, consented leads and conversions of a campaign."""
        async with self.session() as session:
            row = (
                await session.execute(
                    select(
                        func.count(Lead.id),
                        func.count(Lead.id).filter(Lead.consent.is_(True)),
                        func.count(Lead.id).filter(Lead.status == "converted"),
                    ).where(Lead.campaign_id == campaign.id)
                )
            ).one()
        return {"leads": row[0], "consented": row[1], "converted": row[2]}

    # -- leads --------------------------------------------------------------------------------

    async def capture_lead(
        self,
        now: datetime,
        campaign_ref: str | None,
        source: str | None,
        *,
        may_update: bool = True,
        **fields: Any,
    ) -> tuple[Lead | None, bool]:
        """Insert or update the lead with this email; return it and whether it is new.

        Without ``may_update`` an existing lead is left as it is and ``(None, False)`` comes
        back: only the lead's own verified owner, or the marketing team, may change its details
        (its consent above all).
        """
        async with self.session() as session:
            campaign = await self._campaign(session, campaign_ref) if campaign_ref else None
            lead = (
                await session.execute(select(Lead).where(Lead.email == fields["email"]))
            ).scalar_one_or_none()
            created = lead is None
            if lead is not None and not may_update:
                return None, False
            if lead is None:
                lead = Lead(
                    created_at=now, status="new", source=source, campaign=campaign, **fields
                )
                session.add(lead)
            else:
                for key, value in fields.items():
                    if value is not None:
                        setattr(lead, key, value)
            if campaign is not None:
                lead.campaign = campaign
            lead.updated_at = now
            await session.flush()
            return lead, created

    async def convert_lead(self, email: str, campaign_ref: str | None, now: datetime) -> Lead:
        """Mark the lead converted (optionally attributing it to a campaign)."""
        async with self.session() as session:
            lead = (
                await session.execute(select(Lead).where(Lead.email == email))
            ).scalar_one_or_none()
            if lead is None:
                raise NotFound(f"There is no lead with the email {email}.")
            if campaign_ref:
                lead.campaign = await self._campaign(session, campaign_ref)
            lead.status = "converted"
            lead.converted_at = now
            lead.updated_at = now
            return lead

    async def erase_lead(self, email: str) -> int:
        """Delete the lead with this email (any case); how many went."""
        async with self.session() as session:
            theirs = func.lower(Lead.email) == email.lower()
            gone = await session.execute(delete(Lead).where(theirs))
            return int(getattr(gone, "rowcount", 0) or 0)

    # -- segments ---------------------------------------------------------------------------

    async def create_segment(
        self,
        name: str,
        description: str | None,
        match: str,
        rules: list[SegmentRule],
        now: datetime,
    ) -> Segment:
        """A new named segment."""
        segment = Segment(
            name=name,
            description=description,
            match=match,
            rules=[r.model_dump(mode="json") for r in rules],
            created_at=now,
        )
        taken = Conflict(f"A segment named '{name}' already exists.")
        try:
            async with self.session() as session:
                same = select(Segment.id).where(func.lower(Segment.name) == name.lower())
                if (await session.execute(same)).first() is not None:
                    raise taken
                session.add(segment)
        except IntegrityError:
            raise taken from None
        return segment

    async def get_segment(self, name: str) -> Segment:
        """A segment by name (case-insensitive)."""
        async with self.session() as session:
            found = (
                await session.execute(
                    select(Segment).where(func.lower(Segment.name) == name.strip().lower())
                )
            ).scalar_one_or_none()
        if found is None:
            raise NotFound(f"There is no segment '{name}'.")
        return found

    async def segment_members(self, segment: Segment, limit: int) -> tuple[int, list[Lead]]:
        """How many leads match ``segment``, and the first ``limit`` of them."""
        rules = [SegmentRule.model_validate(r) for r in segment.rules]
        where = segment_clause(rules, segment.match)
        base = select(Lead).outerjoin(Campaign, Lead.campaign_id == Campaign.id).where(where)
        async with self.session() as session:
            size = (
                await session.execute(select(func.count()).select_from(base.subquery()))
            ).scalar_one()
            sample = list(
                (await session.execute(base.order_by(Lead.id).limit(limit))).unique().scalars()
            )
        return int(size), sample


def _record_of(row: ProcessedRequest) -> tuple[dict[str, Any], list[Envelope]]:
    data = row.result or {}
    return dict(data.get("answer") or {}), envelopes_from_json(data.get("envelopes"))
