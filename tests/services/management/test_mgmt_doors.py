"""A ticket round trip through all three doors, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from fastapi import HTTPException, Request

from backend_services.management.service import service
from backend_services.runtime import DoorCaller, create_http_app
from bots.roles import RoleResolver, UnknownApiKey
from bots.web.auth import bearer_token
from events import subjects
from events.bus import Bus
from events.claims import system_actor
from events.envelope import Actor, Conversation, Envelope
from events.micro import CLAIM_HEADER, ServiceClient, micro_subject
from events.payloads import Reply
from tests.claims import TEST_ISSUER, signed, signed_runner
from tests.services.doors import door_call
from tests.services.management.conftest import ADMIN, USER, FakeClock, ask, events_of, make_settings


async def micro(
    bus: Bus, action: str, envelope_or_payload: dict | Envelope, claim: str | None = None
) -> Reply:
    body = (
        envelope_or_payload.to_bytes()
        if isinstance(envelope_or_payload, Envelope)
        else json.dumps(envelope_or_payload).encode()
    )
    headers = {CLAIM_HEADER: claim} if claim else None
    raw = await bus.request(micro_subject("management", action), body, headers=headers)
    return Reply.model_validate_json(raw)


def api_envelope(action: str, payload: dict, actor: Actor = ADMIN) -> Envelope:
    return signed(
        Envelope.new(
            subjects.intent_type("management", action),
            payload,
            conversation=Conversation(channel="api", id="admin-console"),
            actor=actor,
        )
    )


def api_key_doors(bus: Bus) -> object:
    """The services' HTTP doors as the gateway serves them: API keys checked by management."""
    roles = RoleResolver(bus, ServiceClient(bus, TEST_ISSUER))

    async def resolve(request: Request) -> DoorCaller:
        token = bearer_token(request)
        if token is None:
            raise HTTPException(401, "no key")
        try:
            principal = await roles.api_key(token)
        except UnknownApiKey:
            raise HTTPException(401, "unknown key") from None
        return DoorCaller(principal.actor, principal.email)

    return create_http_app([service], door_call(bus), resolve)


async def test_ticket_round_trip_three_doors(
    bus: Bus, db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    runner = signed_runner(
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

        # 2. Micro request on fd.svc.management.ticket_create: the bare payload, with the
        #    caller's claim in the header. Without a claim it is refused.
        payload = {"subject": "Printer on fire", "requester_email": "x@example.com"}
        unsigned = await micro(bus, "ticket_create", payload)
        assert unsigned.status == "denied"
        guest = Actor(id="guest:w-" + "a" * 32, roles=("guest",))
        claim = TEST_ISSUER.issue(guest, "management", conversation=("api", "micro-test"))
        reply2 = await micro(bus, "ticket_create", payload, claim)
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
        # resolve_actor is internal: only a component's own (system) claim may ask it.
        as_admin = await micro(
            bus, "resolve_actor", api_envelope("resolve_actor", {"api_key": key})
        )
        assert as_admin.status == "denied"
        system = await ServiceClient(bus, TEST_ISSUER).call(
            "management", "resolve_actor", {"api_key": key}, system_actor("gateway")
        )
        assert (
            system.status == "ok" and system.data and system.data["actor_id"] == "user:slack-uadmin"
        )
        transport = httpx.ASGITransport(app=api_key_doors(bus))
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
