"""The marketing store on PostgreSQL (skipped with the reason when none is reachable)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backend_services.marketing.lifecycle import TransitionRefused
from backend_services.marketing.models import SegmentRule
from backend_services.marketing.store import Base, Conflict, MarketingStore

pytestmark = pytest.mark.postgres


async def test_store_on_postgres(postgres_url: str) -> None:
    schema = f"mk_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(postgres_url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_async_engine(
        postgres_url, connect_args={"server_settings": {"search_path": schema}}
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        store = MarketingStore(engine)
        now = datetime(2026, 3, 2, 9, tzinfo=UTC)
        campaign = await store.create_campaign(
            now, "agent", name="PG launch", channel="email", message="hi"
        )
        with pytest.raises(Conflict):
            await store.create_campaign(
                now, "agent", name="pg LAUNCH", channel="email", message="x"
            )
        scheduled, previous = await store.transition(
            "#" + str(campaign.id), "schedule", now, now + timedelta(hours=1)
        )
        assert (previous, scheduled.status) == ("draft", "scheduled")
        assert [c.name for c in await store.due_campaigns(now + timedelta(hours=2))] == [
            "PG launch"
        ]
        with pytest.raises(TransitionRefused):
            await store.transition("pg launch", "resume", now)
        for email, consent in [("a@pg.example", True), ("b@pg.example", False)]:
            await store.capture_lead(
                now,
                "PG launch",
                "web:c1",
                name="X",
                email=email,
                company="Acme",
                interest=None,
                consent=consent,
            )
        await store.convert_lead("a@pg.example", None, now)
        assert await store.campaign_stats(campaign) == {"leads": 2, "consented": 1, "converted": 1}
        segment = await store.create_segment(
            "pg-optin",
            None,
            "all",
            [
                SegmentRule(field="campaign", op="eq", value="pg launch"),
                SegmentRule(field="consent", op="eq", value=True),
            ],
            now,
        )
        size, sample = await store.segment_members(segment, 5)
        assert size == 1 and sample[0].email == "a@pg.example"
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
