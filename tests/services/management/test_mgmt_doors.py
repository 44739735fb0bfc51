"""A ticket round trip through all three doors, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from backend_services.management.auth import api_key_resolver
from backend_services.management.service import service
from backend_services.runtime import ServiceRunner, create_http_app
from events import subjects
from events.bus import Bus
from events.envelope import Conversation, Envelope
from events.micro import micro_subject
from events.payloads import Reply
from tests.services.management.conftest import ADMIN, USER, FakeClock, ask, events_of, make_settings


async def micro(bus: Bus, action: str, envelope_or_payload: dict | Envelope) -> Reply:
    body = (
        envelope_or_payload.to_bytes()
        if isinstance(envelope_or_payload, Envelope)
        else json.dumps(envelope_or_payload).encode()
    )
    return Reply.model_validate_json(await bus.request(micro_subject("management", action), body))


def api_envelope(action: str, payload: dict, actor=ADMIN) -> Envelope:
    return Envelope.new(
        subjects.intent_type("management", action),
        payload,
        conversation=Conversation(channel="api", id="admin-console"),
        actor=actor,
    )


async def test_ticket_round_trip_three_doors(
    bus: Bus, db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    runner = ServiceRunner(
        service, bus, settings=make_settings(db_url, tmp_path), clock=clock, instance="doors"
    )
    await runner.start()
    try:
        # 1. Intent on NATS -> Reply on the bus, found by correlation id.
        reply = await ask(
            bus,
            "ticket_create",
            {"subject": "VPN drops", "requester_email": "uma@example.com", "priority": "high"},
            USER,
        )
        assert reply.status == "ok", reply
        assert reply.text == "Ticket #1 is open: VPN drops (priority high)."
        assert reply.data and reply.data["number"] == 1 and reply.data["status"] == "open"
        created = await events_of(bus, "ticket.created")
        assert [e.payload["ticket"] for e in created] == [1]
        assert created[0].payload["requester_email"] == "uma@example.com"

        # 2. Micro request on fd.svc.management.ticket_create (bare payload: anonymous user).
        reply2 = await micro(
            bus, "ticket_create", {"subject": "Printer on fire", "requester_email": "x@example.com"}
        )
        assert reply2.status == "ok" and reply2.data and reply2.data["number"] == 2
        assert reply2.data["priority"] == "normal"

        # The requester reads their ticket back through the intent door.
        got = await ask(bus, "ticket_get", {"ticket": "#1"}, USER)
        assert got.status == "ok" and got.data and got.data["subject"] == "VPN drops"

        # 3. HTTP door: an admin issues an API key (request door), the key authenticates.
        key_reply = await micro(
            bus, "api_key_create", api_envelope("api_key_create", {"user": "slack:UADMIN"})
        )
        assert key_reply.status == "ok", key_reply
        key = key_reply.data["key"]
        app = create_http_app([runner], api_key_resolver(bus))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            url = "/services/management/ticket_create"
            body = {"subject": "Laptop slow", "requester_email": "lee@example.com"}
            unauthenticated = await http.post(url, json=body)
            assert unauthenticated.status_code == 401
            wrong = await http.post(url, json=body, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await http.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["number"] == 3
            bad = await http.post(
                url,
                json={"subject": "x", "requester_email": "not-an-email"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert bad.status_code == 422
            # The admin sees all three tickets.
            listing = await http.post(
                "/services/management/ticket_search",
                json={},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert listing.status_code == 200
            assert [t["number"] for t in listing.json()["items"]] == [3, 2, 1]
    finally:
        await runner.stop(grace=2)
