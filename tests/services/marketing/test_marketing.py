"""The marketing service on its three doors, against a real nats-server and a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend_services.marketing.service import service, start_due_campaigns
from backend_services.marketing.settings import MarketingSettings
from backend_services.runtime import ServiceRunner
from events import subjects
from events.bus import Bus
from tests.claims import signed_runner
from tests.services.doors import (
    ADMIN,
    AGENT,
    USER,
    ask_intent,
    ask_micro,
    events_of,
    http_client,
    http_headers,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def runner(bus: Bus, tmp_path: Path, clock: Clock) -> AsyncIterator[ServiceRunner]:
    settings = MarketingSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/marketing.db",
        scheduler_interval_seconds=3600,
    )
    r = signed_runner(service, bus, settings=settings, clock=clock, instance="mk-test")
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_campaign_lifecycle_and_events(bus: Bus, runner: ServiceRunner, clock: Clock) -> None:
    created = await ask_intent(
        bus,
        "marketing",
        "campaign_create",
        {"name": "Spring launch", "channel": "slack", "message": "New plans are out!"},
        AGENT,
    )
    assert created.status == "ok", created.text
    assert "Spring launch" in created.text and "draft" in created.text
    start = (clock.now + timedelta(days=1)).isoformat()
    steps = [
        ("campaign_schedule", {"at": start}, "scheduled"),
        ("campaign_pause", {}, "paused"),
        ("campaign_resume", {}, "active"),
        ("campaign_complete", {}, "completed"),
    ]
    for action, extra, status in steps:
        reply = await ask_intent(
            bus, "marketing", action, {"campaign": "spring launch", **extra}, ADMIN
        )
        assert reply.status == "ok", reply.text
        assert reply.data and reply.data["status"] == status
        assert status in reply.text

    refused = await ask_intent(
        bus, "marketing", "campaign_pause", {"campaign": "Spring launch"}, AGENT
    )
    assert refused.status == "invalid"
    assert "completed campaign cannot be paused" in refused.text

    types = [e.type for e in await _all_events(bus) if e.type.startswith("campaign.")]
    assert types == [
        "campaign.created",
        "campaign.scheduled",
        "campaign.paused",
        "campaign.resumed",
        "campaign.completed",
    ]


async def test_schedule_in_the_past_is_refused(
    bus: Bus, runner: ServiceRunner, clock: Clock
) -> None:
    await ask_intent(bus, "marketing", "campaign_create", {"name": "Old", "message": "m"}, AGENT)
    past = (clock.now - timedelta(hours=1)).isoformat()
    reply = await ask_intent(
        bus, "marketing", "campaign_schedule", {"campaign": "Old", "at": past}, AGENT
    )
    assert reply.status == "invalid"
    assert "future" in reply.text


async def test_scheduled_campaign_starts_when_due(
    bus: Bus, runner: ServiceRunner, clock: Clock
) -> None:
    at = (clock.now + timedelta(hours=1)).isoformat()
    reply = await ask_intent(
        bus,
        "marketing",
        "campaign_create",
        {"name": "Timed", "message": "m", "scheduled_at": at},
        AGENT,
    )
    assert reply.data and reply.data["status"] == "scheduled"
    assert await start_due_campaigns(runner.context) == 0
    clock.now += timedelta(hours=2)
    assert await start_due_campaigns(runner.context) == 1
    status = await ask_intent(bus, "marketing", "campaign_status", {"campaign": "Timed"}, AGENT)
    assert status.data and status.data["campaigns"][0]["status"] == "active"
    launched = await events_of(bus, "campaign.launched")
    assert [e.payload["name"] for e in launched] == ["Timed"]
    assert launched[0].conversation.channel == "system"


async def test_management_actions_refuse_a_user(bus: Bus, runner: ServiceRunner) -> None:
    reply = await ask_intent(
        bus, "marketing", "campaign_create", {"name": "Sneaky", "message": "hi"}, USER
    )
    assert reply.status == "denied"
    assert "needs one of the roles: admin, agent" in reply.text
    assert await events_of(bus, "campaign.created") == []


async def test_lead_capture_refuses_invalid_email(bus: Bus, runner: ServiceRunner) -> None:
    reply = await ask_intent(
        bus,
        "marketing",
        "lead_capture",
        {"name": "Bob", "email": "bob@", "consent": True},
        USER,
    )
    assert reply.status == "invalid"
    assert "'bob@' is not a valid email address" in reply.text
    missing = await ask_intent(
        bus, "marketing", "lead_capture", {"name": "Bob", "email": "bob@example.com"}, USER
    )
    assert missing.status == "invalid"
    assert "consent" in missing.text
    assert await events_of(bus, "lead.captured") == []


async def test_leads_stats_and_conversion(bus: Bus, runner: ServiceRunner) -> None:
    await ask_intent(
        bus, "marketing", "campaign_create", {"name": "Webinar", "message": "Join us"}, AGENT
    )
    for name, email, consent in [
        ("Ann Lee", "Ann@Example.com", True),
        ("Ben Ode", "ben@example.org", False),
    ]:
        reply = await ask_intent(
            bus,
            "marketing",
            "lead_capture",
            {
                "name": name,
                "email": email,
                "company": "Acme",
                "interest": "pricing",
                "consent": consent,
                "campaign": "Webinar",
            },
            USER,
        )
        assert reply.status == "ok", reply.text
    assert "Thanks, Ann!" in (await _reply_texts(bus))[0]
    converted = await ask_intent(
        bus, "marketing", "lead_convert", {"email": "ann@example.com"}, AGENT
    )
    assert converted.status == "ok" and converted.data and converted.data["status"] == "converted"

    stats = await ask_intent(bus, "marketing", "campaign_stats", {"campaign": "Webinar"}, AGENT)
    assert stats.data is not None
    row = stats.data["campaigns"][0]
    assert (row["leads"], row["consented_leads"], row["converted"]) == (2, 1, 1)
    assert row["conversion_rate"] == pytest.approx(0.5)
    assert "2 lead(s), 1 converted (50% conversion)" in stats.text

    captured = await events_of(bus, "lead.captured")
    assert [(e.payload["email"], e.payload["consent"]) for e in captured] == [
        ("ann@example.com", True),
        ("ben@example.org", False),
    ]
    assert captured[0].payload["campaign"] == "Webinar"
    assert captured[0].payload["source"].startswith("web:test-")
    assert [e.payload["email"] for e in await events_of(bus, "lead.converted")] == [
        "ann@example.com"
    ]


async def test_segments_select_leads_by_rules(bus: Bus, runner: ServiceRunner) -> None:
    for name, email, company, consent in [
        ("A", "a@acme.com", "Acme Corp", True),
        ("B", "b@acme.com", "ACME labs", False),
        ("C", "c@globex.com", "Globex", True),
    ]:
        await ask_intent(
            bus,
            "marketing",
            "lead_capture",
            {"name": name, "email": email, "company": company, "consent": consent},
            USER,
        )
    reply = await ask_intent(
        bus,
        "marketing",
        "segment_create",
        {
            "name": "acme-optin",
            "rules": [
                {"field": "company", "op": "contains", "value": "acme"},
                {"field": "consent", "op": "eq", "value": True},
            ],
        },
        AGENT,
    )
    assert reply.status == "ok", reply.text
    assert reply.data and reply.data["size"] == 1
    anyof = await ask_intent(
        bus,
        "marketing",
        "segment_create",
        {
            "name": "acme-or-globex",
            "match": "any",
            "rules": [
                {"field": "email", "op": "endswith", "value": "@globex.com"},
                {"field": "company", "op": "startswith", "value": "acme"},
            ],
        },
        AGENT,
    )
    assert anyof.data and anyof.data["size"] == 3
    preview = await ask_intent(
        bus, "marketing", "segment_preview", {"name": "ACME-OPTIN", "limit": 5}, AGENT
    )
    assert [lead["email"] for lead in preview.data["sample"]] == ["a@acme.com"]  # type: ignore[index]
    assert "holds 1 lead(s)" in preview.text
    bad = await ask_intent(
        bus,
        "marketing",
        "segment_create",
        {"name": "bad", "rules": [{"field": "salary", "op": "eq", "value": 1}]},
        AGENT,
    )
    assert bad.status == "invalid" and "field" in bad.text


async def test_announce_emits_a_slack_event(bus: Bus, runner: ServiceRunner) -> None:
    await ask_intent(
        bus,
        "marketing",
        "campaign_create",
        {"name": "Launch", "message": "We launched!", "slack_channel": "#general"},
        AGENT,
    )
    reply = await ask_intent(bus, "marketing", "campaign_announce", {"campaign": "Launch"}, AGENT)
    assert reply.status == "ok", reply.text
    assert "#general" in reply.text
    announced = await events_of(bus, "campaign.announced")
    assert len(announced) == 1
    event = announced[0]
    assert event.conversation.channel == "slack" and event.conversation.id == "#general"
    assert event.payload["channel"] == "#general" and event.payload["text"] == "We launched!"
    # The Slack side can subscribe with exactly this filter.
    flt = subjects.events_filter(channel="slack", envelope_type="campaign.announced")
    seq, _ = await anext(aiter(bus.tail(flt, from_seq=1)))
    assert seq == reply.data["event_seq"]  # type: ignore[index]

    nochannel = await ask_intent(
        bus, "marketing", "campaign_create", {"name": "Quiet", "message": "m"}, AGENT
    )
    assert nochannel.status == "ok"
    refused = await ask_intent(bus, "marketing", "campaign_announce", {"campaign": "Quiet"}, AGENT)
    assert refused.status == "invalid" and "Which Slack channel" in refused.text
    bad = await ask_intent(
        bus,
        "marketing",
        "campaign_announce",
        {"campaign": "Quiet", "slack_channel": "general chat"},
        AGENT,
    )
    assert bad.status == "invalid" and "is not a Slack channel" in bad.text


async def test_micro_door(bus: Bus, runner: ServiceRunner) -> None:
    reply = await ask_micro(
        bus,
        "marketing",
        "lead_capture",
        {"name": "Mia", "email": "mia@example.com", "consent": True},
        USER,
    )
    assert reply.status == "ok" and "mia@example.com" in reply.text
    denied = await ask_micro(bus, "marketing", "campaign_status", {}, USER)
    assert denied.status == "denied"


async def test_http_door(bus: Bus, runner: ServiceRunner) -> None:
    async with http_client(bus, runner) as client:
        ok = await client.post(
            "/services/marketing/campaign_create",
            json={"name": "Via HTTP", "message": "hello"},
            headers=http_headers(AGENT),
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "draft"
        denied = await client.post(
            "/services/marketing/campaign_create",
            json={"name": "Nope", "message": "hello"},
            headers=http_headers(USER),
        )
        assert denied.status_code == 403
        assert "roles" in denied.json()["detail"]
        invalid = await client.post(
            "/services/marketing/lead_capture",
            json={"name": "X", "email": "not-an-email", "consent": True},
            headers=http_headers(USER),
        )
        assert invalid.status_code == 422
        dup = await client.post(
            "/services/marketing/campaign_create",
            json={"name": "via http", "message": "again"},
            headers=http_headers(AGENT),
        )
        assert dup.status_code == 409 and "already exists" in dup.json()["detail"]


async def _all_events(bus: Bus) -> list:
    return [e async for _, e in bus.tail(subjects.ALL_EVENTS, from_seq=1, stop_at_end=True)]


async def _reply_texts(bus: Bus) -> list[str]:
    return [
        e.payload["text"]
        for e in await events_of(bus, "reply")
        if e.payload.get("action") == "lead_capture"
    ]


async def test_an_existing_lead_changes_only_for_its_owner_or_the_team(
    bus: Bus, runner: ServiceRunner
) -> None:
    """A guest (or anyone) who types someone else's email changes nothing of that lead and does
    not learn that it exists; the verified owner and the marketing team can change it."""
    from events.envelope import Actor
    from events.micro import ServiceClient
    from tests.claims import TEST_ISSUER

    client = ServiceClient(bus, TEST_ISSUER, timeout=15)
    original = {"name": "Ann Lee", "email": "ann@example.com", "company": "Acme", "consent": True}
    first = await ask_intent(bus, "marketing", "lead_capture", original, USER)
    assert first.status == "ok" and first.data and first.data["id"] is None  # not the caller's
    guest = Actor(id="guest:w-" + "1" * 32, roles=("guest",))
    forged = {"name": "Mallory", "email": "ann@example.com", "company": "Evil", "consent": False}
    answer = await client.call(
        "marketing", "lead_capture", forged, guest, conversation=("web", "w-" + "1" * 32)
    )
    assert answer.status == "ok" and answer.data
    # The same answer as for a new email: only what was sent, no id, nothing learned.
    assert answer.data["id"] is None and answer.data["created"] is None
    assert answer.data["name"] == "Mallory"
    # A caller whose claim verified a different email is no owner either.
    other = Actor(id="site:mallory", roles=("user",))
    await client.call(
        "marketing",
        "lead_capture",
        forged,
        other,
        conversation=("web", "m"),
        email="mallory@example.com",
    )
    segment = await ask_intent(
        bus,
        "marketing",
        "segment_create",
        {"name": "ann", "rules": [{"field": "email", "op": "eq", "value": "ann@example.com"}]},
        AGENT,
    )
    assert segment.status == "ok", segment.text
    leads = await ask_intent(bus, "marketing", "segment_preview", {"name": "ann"}, AGENT)
    assert leads.data, leads.text
    [kept] = leads.data["sample"]
    assert (kept["name"], kept["company"], kept["consent"]) == ("Ann Lee", "Acme", True)
    # Only the unchanged capture was announced.
    assert [e.payload["name"] for e in await events_of(bus, "lead.captured")] == ["Ann Lee"]

    # Ann herself (a site user whose token verified her email) may withdraw her consent.
    ann = Actor(id="site:ann", name="Ann Lee", roles=("user",))
    withdrawn = await client.call(
        "marketing",
        "lead_capture",
        {**original, "consent": False},
        ann,
        conversation=("web", "a"),
        email="ANN@example.com",
    )
    assert withdrawn.status == "ok" and withdrawn.data and withdrawn.data["created"] is False
    assert withdrawn.data["consent"] is False
    # ... and an agent may correct the company.
    fixed = await ask_intent(
        bus,
        "marketing",
        "lead_capture",
        {**original, "company": "Acme Corp", "consent": False},
        AGENT,
    )
    assert fixed.data and fixed.data["company"] == "Acme Corp" and fixed.data["id"] is not None


async def test_a_redelivery_after_the_commit_answers_and_emits_once(
    bus: Bus, runner: ServiceRunner
) -> None:
    """The campaign was created but publishing campaign.created failed: the redelivered intent
    is answered from the record (not "name taken") and the event is published once."""
    from events.errors import PublishTimeout

    publish = bus.publish
    failed: list[str] = []

    async def failing_publish(env):  # type: ignore[no-untyped-def]
        if env.type == "campaign.created" and not failed:
            failed.append(str(env.id))
            raise PublishTimeout("NATS did not answer in time")
        return await publish(env)

    bus.publish = failing_publish  # type: ignore[method-assign]
    try:
        reply = await ask_intent(
            bus, "marketing", "campaign_create", {"name": "Once", "message": "hi"}, AGENT
        )
    finally:
        bus.publish = publish  # type: ignore[method-assign]
    assert failed and reply.status == "ok", reply.text
    assert reply.data and reply.data["name"] == "Once" and reply.data["note"] == "Created."
    created = await events_of(bus, "campaign.created")
    assert [str(e.id) for e in created] == failed
    # The same request sent twice on the request door (same envelope id): one campaign.
    from tests.services.doors import intent

    again = intent("marketing", "campaign_create", {"name": "Twice", "message": "x"}, AGENT)
    from events.micro import micro_subject
    from events.payloads import Reply

    answers = [
        Reply.model_validate_json(
            await bus.request(micro_subject("marketing", "campaign_create"), again.to_bytes())
        )
        for _ in range(2)
    ]
    assert [a.status for a in answers] == ["ok", "ok"]
    assert answers[0].data == answers[1].data
    assert [e.payload["name"] for e in await events_of(bus, "campaign.created")] == [
        "Once",
        "Twice",
    ]


async def test_a_lead_is_erased_by_an_admin_and_the_event_holds_a_count(
    bus: Bus, runner: ServiceRunner
) -> None:
    lead = {"name": "Ann Lee", "email": "ann@example.com", "consent": True}
    assert (await ask_intent(bus, "marketing", "lead_capture", lead, USER)).status == "ok"
    other = {"name": "Ben Ode", "email": "ben@example.org", "consent": True}
    assert (await ask_intent(bus, "marketing", "lead_capture", other, USER)).status == "ok"
    refused = await ask_intent(bus, "marketing", "lead_erase", {"email": "ann@example.com"}, AGENT)
    assert refused.status == "denied"
    erased = await ask_intent(bus, "marketing", "lead_erase", {"email": "ANN@example.com"}, ADMIN)
    assert erased.status == "ok" and erased.text == "Erased 1 lead(s).", erased.text
    again = await ask_intent(bus, "marketing", "lead_erase", {"email": "ann@example.com"}, ADMIN)
    assert again.status == "ok" and again.data == {"leads": 0}
    assert [e.payload for e in await events_of(bus, "lead.erased")] == [{"leads": 1}, {"leads": 0}]
    # the lead is gone: capturing it again makes a new one
    back = await ask_intent(bus, "marketing", "lead_capture", lead, AGENT)
    assert back.status == "ok" and back.data and back.data["created"] is True
