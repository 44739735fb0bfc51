"""The analysis service: views from the bus (replay == live), metrics answers, charts, doors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend_services.analysis.charts import PNG_MAGIC, ChartStore
from backend_services.analysis.follower import replay
from backend_services.analysis.periods import window
from backend_services.analysis.service import charts_router, service
from backend_services.analysis.settings import AnalysisSettings
from backend_services.runtime import ServiceRunner, create_http_app
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from tests.claims import signed_runner
from tests.services.doors import (
    ADMIN,
    AGENT,
    USER,
    ask_intent,
    ask_micro,
    door_call,
    header_actor,
    http_client,
    http_headers,
)

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday; this week starts Mon 2 March
MON = datetime(2026, 3, 2, tzinfo=UTC)
CUSTOMER = Actor(id="C-1", name="Cara", roles=("user",))
STAFF = Actor(id="S-1", name="Sam", roles=("agent",))


def at(day: int, hour: int, minute: int = 0, second: float = 0.0) -> datetime:
    """A moment in the week of 2 March 2026 (day 0 = Monday; negative: the week before)."""
    return MON + timedelta(days=day, hours=hour, minutes=minute, seconds=second)


def ev(
    type: str,
    payload: dict[str, Any],
    when: datetime,
    conv: str = "conv-x",
    actor: Actor = CUSTOMER,
    correlation: uuid.UUID | None = None,
) -> Envelope:
    env = Envelope.new(
        type,
        payload,
        conversation=Conversation(channel="web", id=conv),
        actor=actor,
        correlation_id=correlation,
    )
    return env.model_copy(update={"occurred_at": when})


def turn(
    conv: str, text: str, intent: str, when: datetime, latency: float, fallback: bool = False
) -> list[Envelope]:
    """A user turn: message, what NLU understood, and the reply ``latency`` seconds later."""
    msg = ev("message.received", {"text": text}, when, conv)
    detected = ev(
        "intent.detected",
        {
            "text": text,
            "intent": intent,
            "confidence": 0.3 if fallback else 0.9,
            "engine": "builtin",
            "model_version": "t",
            "is_fallback": fallback,
        },
        when,
        conv,
        correlation=msg.correlation_id,
    )
    reply = ev(
        "reply",
        {"text": "ok"},
        when + timedelta(seconds=latency),
        conv,
        actor=Actor(id="system"),
        correlation=msg.correlation_id,
    )
    return [msg, detected, reply]


def ticket(
    type: str, number: int, when: datetime, actor: Actor = CUSTOMER, **extra: Any
) -> Envelope:
    payload = {
        "ticket": number,
        "subject": f"Ticket {number}",
        "status": extra.pop("status", "open"),
        "priority": extra.pop("priority", "normal"),
        "requester_email": "cara@example.com",
        **extra,
    }
    return ev(type, payload, when, f"ticket-conv-{number}", actor)


def history() -> list[Envelope]:
    """A small week of activity, plus one conversation and one ticket of the week before."""
    events: list[Envelope] = []
    events += turn("conv-a", "hello", "greet", at(0, 10), 0.5)
    events += turn("conv-b", "open a ticket", "ticket_create", at(1, 9), 1.5)
    events.append(ev("handoff.requested", {"reason": "asked for a human"}, at(1, 9, 1), "conv-b"))
    events += turn("conv-c", "blorp", "nlu_fallback", at(1, 10), 2.0, fallback=True)
    events += turn("conv-old", "hi", "greet", at(-6, 10), 0.7)
    events += [
        ticket("ticket.created", 1, at(0, 11), priority="high", channel="web"),
        ticket(
            "ticket.commented",
            1,
            at(0, 12),
            STAFF,
            priority="high",
            comment_id=1,
            public=True,
            author="sam",
            by_staff=True,
        ),
        ticket(
            "ticket.status_changed",
            1,
            at(1, 11),
            STAFF,
            priority="high",
            status="solved",
            old_status="open",
            new_status="solved",
        ),
        ticket("ticket.csat", 1, at(1, 12), priority="high", status="solved", score=5),
        ticket("ticket.created", 2, at(1, 8), channel="web"),
        ticket(
            "ticket.commented",
            2,
            at(1, 9),
            STAFF,
            comment_id=2,
            public=False,
            author="sam",
            by_staff=True,
        ),
        ticket(
            "ticket.sla_breached",
            2,
            at(1, 12),
            STAFF,
            kind="first_response",
            due_at=at(1, 12).isoformat(),
            detected_at=at(1, 12).isoformat(),
        ),
        ticket("ticket.created", 3, at(-5, 8), priority="urgent", channel="slack"),
        ticket("ticket.closed", 1, at(2, 10), STAFF, priority="high", status="closed"),
    ]
    return events


@pytest.fixture
async def runner(bus: Bus) -> AsyncIterator[ServiceRunner]:
    for env in history():
        await bus.publish(env)
    r = signed_runner(
        service,
        bus,
        settings=AnalysisSettings(public_url="http://fd.test"),
        clock=lambda: NOW,
        instance="an-test",
    )
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def query(bus: Bus, metric: str, period: str = "this_week", actor: Actor = USER) -> str:
    reply = await ask_intent(
        bus, "analysis", "metrics_query", {"metric": metric, "period": period}, actor
    )
    assert reply.status == "ok", reply.text
    return reply.text


async def test_metrics_answers_carry_the_numbers(bus: Bus, runner: ServiceRunner) -> None:
    assert await query(bus, "tickets_opened") == (
        "2 tickets were opened this week (1 high, 1 normal)."
    )
    assert await query(bus, "tickets_opened", "last_week") == (
        "1 ticket was opened last week (1 urgent)."
    )
    assert await query(bus, "open_tickets") == "2 tickets are open now: 1 urgent, 1 normal."
    assert await query(bus, "conversations") == (
        "3 conversations started this week, with 3 messages received."
    )
    assert "33.3% (1 of 3 messages not understood)" in await query(bus, "fallback_rate")
    assert "66.7%: 2 of 3 conversations resolved without a human" in await query(bus, "containment")
    top = await query(bus, "top_intents", "all")
    assert top.startswith("Top intents in total: greet (2, 50%)")
    assert "of 4 detected intents" in top
    assert await query(bus, "csat") == "CSAT this week is 5.00 / 5 from 1 rating (100% satisfied)."
    assert "p50 1.5 s" in await query(bus, "reply_latency")
    first = await query(bus, "first_response")
    assert "first response for tickets opened this week: 1h 0m" in first
    assert "1 still waiting" in first  # ticket 2 only has an internal note
    assert "resolution for tickets opened this week: 24h 0m" in await query(bus, "resolution_time")
    assert await query(bus, "sla_breaches") == (
        "1 SLA breach was detected this week (1 first response)."
    )
    assert await query(bus, "tickets_opened", "today") == "0 tickets were opened today."


async def test_several_metrics_at_once_and_dashboard(bus: Bus, runner: ServiceRunner) -> None:
    reply = await ask_intent(
        bus,
        "analysis",
        "metrics_query",
        {"metrics": ["tickets_opened", "csat", "tickets_opened"], "period": "this_week"},
        USER,
    )
    assert reply.data is not None
    assert [a["metric"] for a in reply.data["answers"]] == ["tickets_opened", "csat"]
    assert reply.text.splitlines()[0].startswith("2 tickets were opened")
    dashboard = await ask_intent(bus, "analysis", "metrics_dashboard", {}, AGENT)
    assert dashboard.data is not None and len(dashboard.data["answers"]) == 11
    assert "SLA breach" in dashboard.text and "Containment" in dashboard.text


async def test_live_views_equal_a_replay(bus: Bus, runner: ServiceRunner) -> None:
    follower = runner.context.state["follower"]
    # More activity while the service is live (including its own replies to these intents).
    for env in turn("conv-live", "status?", "ticket_status", at(2, 11), 0.25):
        await bus.publish(env)
    await bus.publish(ticket("ticket.created", 4, at(2, 11, 5), priority="low", channel="web"))
    assert "3 tickets were opened this week" in await query(bus, "tickets_opened")
    assert await follower.catch_up(10.0)
    live = follower.views.snapshot()
    rebuilt = (await replay(bus)).snapshot()
    assert rebuilt == live
    assert live["last_seq"] == await bus.last_sequence()

    # The admin action does the same inside the service.
    status = await ask_intent(bus, "analysis", "views_rebuild", {}, ADMIN)
    assert status.status == "ok" and "Rebuilt the views" in status.text
    rebuilt_follower = runner.context.state["follower"]
    # The rebuild's own reply is an event too: let the new views take it in, then compare.
    assert await rebuilt_follower.catch_up(10.0)
    after = rebuilt_follower.views.snapshot()
    again = (await replay(bus)).snapshot()
    assert after == again


async def test_chart_png_on_intent_and_http(bus: Bus, runner: ServiceRunner) -> None:
    reply = await ask_intent(
        bus, "analysis", "metrics_chart", {"metric": "top_intents", "period": "all"}, USER
    )
    assert reply.status == "ok", reply.text
    assert reply.image and reply.image.startswith("http://fd.test/services/analysis/charts/")
    path = reply.image.removeprefix("http://fd.test")
    app = create_http_app([runner.service], door_call(bus), header_actor)
    # as the gateway mounts it (frontdoor.doors): read from the object store, on its own bus
    app.include_router(charts_router(ChartStore(bus)), prefix="/services")
    async with http_client(bus, app=app) as client:
        png = await client.get(path)
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(PNG_MAGIC) and len(png.content) > 1000
        missing = await client.get("/services/analysis/charts/" + "0" * 32 + ".png")
        assert missing.status_code == 404
        answer = await client.post(
            "/services/analysis/metrics_query",
            json={"metric": "tickets_opened", "period": "this_week", "chart": True},
            headers=http_headers(USER),
        )
        assert answer.status_code == 200
        body = answer.json()
        assert body["answers"][0]["value"] == 2
        chart = await client.get(body["image"].removeprefix("http://fd.test"))
        assert chart.content.startswith(PNG_MAGIC)
        bad = await client.post(
            "/services/analysis/metrics_query",
            json={"metric": "happiness"},
            headers=http_headers(USER),
        )
        assert bad.status_code == 422


async def test_micro_door_roles_and_invalid_input(bus: Bus, runner: ServiceRunner) -> None:
    micro = await ask_micro(
        bus, "analysis", "metrics_query", {"metric": "csat", "period": "this_week"}, USER
    )
    assert micro.status == "ok" and "5.00 / 5" in micro.text
    denied = await ask_intent(bus, "analysis", "views_rebuild", {}, AGENT)
    assert denied.status == "denied" and "admin" in denied.text
    status = await ask_intent(bus, "analysis", "views_status", {}, AGENT)
    assert status.status == "ok" and "tickets" in status.text
    missing = await ask_intent(bus, "analysis", "metrics_query", {"period": "today"}, USER)
    assert missing.status == "invalid" and "say which metric" in missing.text
    wrong = await ask_intent(
        bus, "analysis", "metrics_query", {"metric": "csat", "period": "someday"}, USER
    )
    assert wrong.status == "invalid" and "period" in wrong.text


def test_periods() -> None:
    assert window("this_week", NOW).start == MON
    assert window("last_week", NOW).end == MON
    assert window("this_month", NOW).start == datetime(2026, 3, 1, tzinfo=UTC)
    assert window("last_month", NOW).start == datetime(2026, 2, 1, tzinfo=UTC)
    assert window("today", NOW).start == datetime(2026, 3, 4, tzinfo=UTC)
