"""Unexpected errors are a 500 with a reference, logged once and compactly off the event loop;
no credential ever reaches a log, even at DEBUG, whatever the channel."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import jwt
import pytest
from fastapi import APIRouter

from bots.web.app import create_gateway_app
from events.bus import Bus
from frontdoor.logs import add_secret, configure_logging, redact_text
from tests.claims import TEST_ISSUER

from .conftest import LiveServer, ScriptedDialogue, SimpleTurn, make_settings
from .web_clients import guest_client, ws_session

SITE_SECRET = "site-secret-for-the-log-test-0123456789"


@contextmanager
def captured_logs(level: str = "debug", fmt: str = "console") -> Iterator[io.StringIO]:
    """The process's logging configured as ``frontdoor`` does, into a buffer."""
    import sys

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    real, sys.stderr = sys.stderr, stream  # configure_logging writes to sys.stderr
    try:
        configure_logging(fmt, level)
    finally:
        sys.stderr = real
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def _boom_router() -> APIRouter:
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("the handler exploded")

    return router


async def test_unexpected_errors_are_500_with_a_reference_logged_once(bus: Bus) -> None:
    app = create_gateway_app(
        bus,
        ScriptedDialogue(),
        issuer=TEST_ISSUER,
        settings=make_settings(),
        routers=[_boom_router()],
        turn_factory=SimpleTurn,
    )
    live = LiveServer(app)
    await live.start()
    try:
        with captured_logs("info") as logs:
            async with httpx.AsyncClient(base_url=live.url) as client:
                answers = [await client.get("/boom") for _ in range(10)]
                # the server still answers everyone else
                assert (await client.get("/api/bots")).status_code == 200
            app.state.gateway.errors.flush()
        references = set()
        for r in answers:
            assert r.status_code == 500 and r.headers["content-type"] == "application/json"
            body = r.json()
            assert set(body) == {"detail", "reference"} and "exploded" not in body["detail"]
            references.add(body["reference"])
        assert len(references) == 10
        text = logs.getvalue()
        assert text.count("unexpected error") == 1, text  # once, then counted
        assert text.count("Traceback (most recent call last)") == 1
        assert "Exception in ASGI application" not in text  # uvicorn's own dump is bypassed
        assert "╭" not in text and "│" not in text  # plain text, not the rich renderer
        assert app.state.gateway.errors.repeats(RuntimeError) == 9
    finally:
        await live.stop()


def test_the_redaction_safety_net() -> None:
    add_secret("slack-signing-secret-abcdef", "short")
    line = (
        "Authorization: Bearer fdk_abc123 token=fds_eyJzIjoidy0x.ZZ.yy "
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig xoxb-1-2-abc "
        "secret slack-signing-secret-abcdef short"
    )
    out = redact_text(line)
    for leaked in ("fdk_abc123", "fds_eyJ", "eyJhbGci", "xoxb-1", "slack-signing-secret"):
        assert leaked not in out, out
    assert out.endswith("short")


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_no_credential_reaches_a_log_at_debug(
    bus: Bus, echo_runner: object, fmt: str
) -> None:
    """Authenticated REST, WebSocket, intents API and Slack traffic, every logger at DEBUG:
    the captured output holds none of the secrets."""
    from bots.slack import attach_slack
    from bots.web.intents_api import intents_router
    from tests.slack.conftest import BOT_TOKEN, SECRET, slack_settings
    from tests.slack.fake_slack import FakeSlack, event_body, sign

    fake = FakeSlack()
    await fake.start()
    api = intents_router(bus, known_actions={"echo": {"ticket_create"}}, timeout=5.0)
    settings = make_settings(site_token_secret=SITE_SECRET, rate_limit=1000)
    app = create_gateway_app(
        bus,
        ScriptedDialogue(),
        issuer=TEST_ISSUER,
        settings=settings,
        routers=[api],
        turn_factory=SimpleTurn,
    )
    assert attach_slack(app, slack_settings(fake)) is not None
    add_secret(SECRET, BOT_TOKEN, SITE_SECRET, "test-secret-0123456789")
    live = LiveServer(app)
    site = jwt.encode({"sub": "carol", "exp": 4102444800 - 1}, SITE_SECRET, algorithm="HS256")
    secrets: list[str] = [SECRET, BOT_TOKEN, SITE_SECRET, site]
    with captured_logs("debug", fmt) as logs:
        await live.start()
        try:
            async with guest_client(live.url) as guest:
                secrets.append(guest.token)
                r = await guest.client.post("/webhooks/rest/webhook", json={"message": "hi"})
                assert r.status_code == 200
                r = await guest.client.post(
                    "/api/intents/echo/ticket_create", json={"subject": "s"}
                )
                assert r.status_code == 200
                async with ws_session(live.ws_url, guest.token) as ws:
                    json.loads(await ws.recv())
                    await ws.send(json.dumps({"type": "message", "text": "hello"}))
                    while json.loads(await ws.recv()).get("type") != "reply":
                        pass
                # the site's token straight on the REST channel, and a wrong one
                r = await guest.client.post(
                    "/webhooks/rest/webhook",
                    json={"message": "hi"},
                    headers={"Authorization": f"Bearer {site}"},
                )
                # a 'short' token would trip the site-token window; only the logs matter here
                assert r.status_code in (200, 401)
                r = await guest.client.post(
                    "/webhooks/rest/webhook",
                    json={"message": "hi"},
                    headers={"Authorization": f"Bearer {site}x"},
                )
                assert r.status_code == 401
                body = json.dumps(
                    event_body(
                        {
                            "type": "app_mention",
                            "user": "U1",
                            "text": "<@UBOT> hey",
                            "ts": "1.1",
                            "channel": "CLOG1",
                        }
                    )
                ).encode()
                headers = {"Content-Type": "application/json", **sign(SECRET, body)}
                r = await guest.client.post("/slack/events", content=body, headers=headers)
                assert r.status_code == 200
                await fake.wait_for(channel="CLOG1")
        finally:
            await live.stop()
            await api.reply_waiter.stop()  # type: ignore[attr-defined]
            await fake.stop()
    text = logs.getvalue()
    assert "DEBUG" in text.upper() or '"debug"' in text  # DEBUG lines were there to search
    for secret in secrets:
        assert secret not in text, f"a secret reached the log: {secret[:12]}..."
        # loggers cut long values (websockets shows a frame's first bytes): no beginning either
        assert secret[:16] not in text, f"part of a secret reached the log: {secret[:12]}..."
