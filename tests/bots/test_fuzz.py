"""Fuzzing the edge, bounded in time and seeded (derandomized), against a live gateway:

- schemathesis generates requests for every operation of the gateway's OpenAPI document (the
  web routes, the intents API, every service door) with a session token, so guarded routes are
  reached, and checks that no answer is a 5xx and each status, content type and body is one the
  document lists;
- hypothesis sends arbitrary WebSocket frames (binary, text, JSON of any shape) on an open
  socket, which must answer every one and stay open;
- hypothesis sends signed Slack requests of arbitrary JSON, which must be a 200 or a 400.

The services behind the doors are replaced by a stub that refuses every call as invalid (the
gateway's edge is what is fuzzed here; the services have their own tests).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from websockets.sync.client import connect

from backend_services.runtime import DoorCaller
from bots.web.app import create_gateway_app
from bots.web.intents_api import intents_router
from events.bus import Bus
from events.payloads import Reply
from frontdoor.doors import add_service_doors
from tests.claims import TEST_ISSUER
from tests.slack.conftest import SECRET, slack_settings
from tests.slack.fake_slack import FakeSlack, sign

from .conftest import LiveServer, ScriptedDialogue, SimpleTurn, make_settings

pytestmark = pytest.mark.timeout(240)

UNLIMITED = {
    "rate_limit": 10**6,
    "address_rate_limit": 10**7,
    "session_rate_limit": 10**6,
    "auth_failure_limit": 10**6,
    "rest_turn_timeout": 2.0,
}
FUZZ = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


async def _stub_call(
    service: str, action: str, payload: dict[str, Any], caller: DoorCaller
) -> Reply:
    return Reply(text="stub", status="invalid", service=service, action=action, errors=[{}])


async def _gateway(bus: Bus, fake: FakeSlack) -> tuple[LiveServer, Any]:
    from bots.slack import attach_slack

    api = intents_router(bus, known_actions={"echo": {"ticket_create"}}, timeout=3.0)
    app = create_gateway_app(
        bus,
        ScriptedDialogue(),
        issuer=TEST_ISSUER,
        settings=make_settings(**UNLIMITED),
        routers=[api],
        turn_factory=SimpleTurn,
    )
    add_service_doors(app, app.state.gateway, timeout=3.0, call=_stub_call)
    assert attach_slack(app, slack_settings(fake)) is not None
    live = LiveServer(app)
    await live.start()
    return live, api


def _fuzz_openapi(document: dict[str, Any], base_url: str, token: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
            )
            case.validate_response(response, checks=checks)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert operations > 50  # every door too
    return failures


async def test_every_route_of_the_openapi_document(bus: Bus, echo_runner: object) -> None:
    fake = FakeSlack()
    await fake.start()
    live, api = await _gateway(bus, fake)
    try:
        token, _ = live.app.state.gateway.signer.issue()
        async with httpx.AsyncClient(base_url=live.url) as client:
            document = (await client.get("/openapi.json")).json()
        failures = await asyncio.to_thread(_fuzz_openapi, document, live.url, token)
        assert failures == [], "\n\n".join(failures)
    finally:
        await live.stop()
        await api.reply_waiter.stop()
        await fake.stop()


FRAMES = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    JSON.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["message", "ping", "auth", "x"])},
        optional={"text": JSON, "client_id": JSON, "bot": JSON},
    ).map(json.dumps),
)


def _fuzz_websocket(ws_url: str, token: str) -> None:
    with connect(ws_url, max_size=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"

        @settings(FUZZ, max_examples=120)
        @given(frame=FRAMES)
        def run(frame: str | bytes) -> None:
            ws.send(frame)
            ws.send(json.dumps({"type": "ping"}))
            while True:  # every frame is answered, and the socket stays open
                answer = json.loads(ws.recv(timeout=10))
                assert answer.get("code") != "internal", answer
                if answer["type"] == "pong":
                    return

        run()


def _fuzz_slack(events_url: str) -> None:
    bodies = st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"type": st.sampled_from(["event_callback", "x"])},
            optional={"event": JSON, "event_id": JSON, "team_id": JSON},
        ),
        st.fixed_dictionaries(
            {"type": st.just("event_callback"), "event_id": st.uuids().map(str)},
            optional={
                "event": st.fixed_dictionaries(
                    {"type": st.sampled_from(["message", "app_mention"])},
                    optional={"user": JSON, "text": JSON, "channel": JSON, "ts": JSON},
                )
            },
        ),
    )
    with httpx.Client(timeout=15) as client:

        @settings(FUZZ, max_examples=120)
        @given(body=bodies)
        def run(body: Any) -> None:
            raw = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **sign(SECRET, raw)}
            r = client.post(events_url, content=raw, headers=headers)
            assert r.status_code in (200, 400), (r.status_code, r.text, body)

        run()


async def test_websocket_frames_and_signed_slack_requests(bus: Bus) -> None:
    fake = FakeSlack()
    await fake.start()
    live, api = await _gateway(bus, fake)
    try:
        token, _ = live.app.state.gateway.signer.issue()
        await asyncio.to_thread(_fuzz_websocket, live.ws_url, token)
        await asyncio.to_thread(_fuzz_slack, f"{live.url}/slack/events")
    finally:
        await live.stop()
        await api.reply_waiter.stop()
        await fake.stop()
