"""Unexpected errors are a 500 with a reference, logged once and compactly off the event loop;
no credential ever reaches a log, even at DEBUG, whatever the channel."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import APIRouter

from bots.web.app import create_gateway_app
from bots.web.errors import ErrorReporter
from events.bus import Bus
from frontdoor.logs import add_secret, configure_logging, redact_text
from tests.claims import TEST_ISSUER

from .conftest import LiveServer, ScriptedDialogue, SimpleTurn, make_settings
from .management import management_with_api_key
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
        # the repeats answer with the reference of the one logged: quoting it finds the trace
        [reference] = references
        text = logs.getvalue()
        assert text.count("unexpected error") == 1, text  # once, then counted
        assert text.count("Traceback (most recent call last)") == 1
        assert "Exception in ASGI application" not in text  # uvicorn's own dump is bypassed
        assert "╭" not in text and "│" not in text  # plain text, not the rich renderer
        assert f"unexpected error {reference} in GET /boom: RuntimeError" in text
        assert app.state.gateway.errors.repeats(RuntimeError) == 9
    finally:
        await live.stop()


def test_repeats_are_counted_then_logged_in_one_line() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.errors.repeats")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.propagate = False
    reporter = ErrorReporter(window=0.3, logger=logger)

    def fail(where: str) -> str:
        try:
            raise ValueError("bad\nINFO forged line")
        except ValueError as exc:
            return reporter.report(exc, where)

    first = [fail("GET /a\nforged") for _ in range(5)]
    assert len(set(first)) == 1 and reporter.repeats(ValueError) == 4
    reporter.flush()
    for _ in range(100):  # the worker logs the count once the window is over
        if "more times" in stream.getvalue():
            break
        time.sleep(0.05)
    text = stream.getvalue()
    assert f"unexpected error {first[0]} (ValueError at " in text
    assert "happened 4 more times within 0.3 s" in text
    assert "\nforged" not in text and "\nINFO forged" not in text  # one line per entry
    assert fail("GET /a") != first[0]  # a new window: logged again, a new reference


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
    bus: Bus, echo_runner: object, tmp_path: Path, fmt: str
) -> None:
    """Authenticated REST, WebSocket, intents API, service door and Slack traffic (a guest
    session, a site user token, a real API key checked by management, signed Slack requests),
    every logger at DEBUG: the captured output holds none of the secrets."""
    from bots.slack import attach_slack
    from bots.web.intents_api import intents_router
    from frontdoor.doors import add_service_doors
    from frontdoor.wiring import never_log
    from tests.slack.conftest import BOT_TOKEN, SECRET, slack_settings
    from tests.slack.fake_slack import FakeSlack

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
    add_service_doors(app, app.state.gateway, timeout=10.0)
    never_log(settings, app)  # what `frontdoor serve gateway` registers with the log's net
    live = LiveServer(app)
    site = jwt.encode({"sub": "carol", "exp": int(time.time()) + 600}, SITE_SECRET, "HS256")
    secrets: list[str] = [SECRET, BOT_TOKEN, SITE_SECRET, site, "test-secret-0123456789"]
    async with management_with_api_key(bus, tmp_path) as management:
        secrets.append(management.api_key)
        with captured_logs("debug", fmt) as logs:
            await live.start()
            try:
                await _authenticated_traffic(live, fake, site, management.api_key, secrets)
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


async def _authenticated_traffic(
    live: LiveServer, fake: Any, site: str, api_key: str, secrets: list[str]
) -> None:
    """Every kind of credential on every channel, and wrong ones."""
    from tests.slack.conftest import SECRET
    from tests.slack.fake_slack import event_body, sign

    async with guest_client(live.url) as guest:
        secrets.append(guest.token)
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": "hi"})
        assert r.status_code == 200
        r = await guest.client.post("/api/intents/echo/ticket_create", json={"subject": "s"})
        assert r.status_code == 200
        async with ws_session(live.ws_url, guest.token) as ws:
            json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "message", "text": "hello"}))
            while json.loads(await ws.recv()).get("type") != "reply":
                pass
        for token, expected in ((site, 200), (api_key, 200), (site + "x", 401)):
            r = await guest.client.post(
                "/webhooks/rest/webhook",
                json={"message": "hi"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == expected, r.text
        r = await guest.client.post(
            "/services/management/whoami", json={}, headers={"Authorization": f"Bearer {api_key}"}
        )
        assert r.status_code == 200, r.text
        r = await guest.client.post(
            "/api/intents/echo/ticket_create",
            json={"subject": "s"},
            headers={"Authorization": f"Bearer {api_key}"},
        )
        assert r.status_code == 200, r.text
        mention = {"type": "app_mention", "user": "U1", "text": "<@UBOT> hey", "ts": "1.1"}
        body = json.dumps(event_body({**mention, "channel": "CLOG1"})).encode()
        headers = {"Content-Type": "application/json", **sign(SECRET, body)}
        r = await guest.client.post("/slack/events", content=body, headers=headers)
        assert r.status_code == 200
        await fake.wait_for(channel="CLOG1")
