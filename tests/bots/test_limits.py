"""Edge limits: length, rate, body size, validation, security headers; sessions."""

from __future__ import annotations

import time

import httpx
import pytest

from bots.identity import SiteUser
from bots.web.ratelimit import BoundedMemoryStorage, Rate, RateLimited, RateLimits
from bots.web.sessions import InvalidSession, SessionSigner
from events.bus import Bus
from tests.claims import TEST_ISSUER

from .conftest import ScriptedDialogue, start_gateway
from .web_clients import guest_client


async def test_message_too_long_is_422_with_reason(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), max_message_chars=50)
    try:
        async with guest_client(live.url) as guest:
            r = await guest.client.post("/webhooks/rest/webhook", json={"message": "x" * 51})
        assert r.status_code == 422
        assert r.json()["detail"] == "message is 51 characters; the limit is 50"
    finally:
        await live.stop()


async def test_rate_limit_is_429_with_retry_after(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), rate_limit=3, rate_window_seconds=60)
    try:
        async with guest_client(live.url) as guest, guest_client(live.url) as other:
            codes = []
            for i in range(4):
                r = await guest.client.post("/webhooks/rest/webhook", json={"message": f"m{i}"})
                codes.append(r.status_code)
            assert codes == [200, 200, 200, 429]
            assert 1 <= int(r.headers["Retry-After"]) <= 60
            assert "too many messages" in r.json()["detail"]
            # another visitor is not affected
            r = await other.client.post("/webhooks/rest/webhook", json={"message": "hi"})
            assert r.status_code == 200
    finally:
        await live.stop()


async def test_body_too_large_is_413(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), max_body_bytes=1024)
    try:
        async with guest_client(live.url) as guest:
            client = guest.client
            r = await client.post("/webhooks/rest/webhook", json={"message": "y" * 5000})
            assert r.status_code == 413
            assert "exceeds 1024 bytes" in r.json()["detail"]

            async def chunks():  # no content-length: streamed body is counted too
                for _ in range(10):
                    yield b"z" * 500

            r = await client.post(
                "/webhooks/rest/webhook",
                content=chunks(),
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 413
    finally:
        await live.stop()


async def test_validation_errors_are_422(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue())
    try:
        async with guest_client(live.url) as guest:
            client = guest.client
            r = await client.post("/webhooks/rest/webhook", json={"sender": guest.sender})
            assert r.status_code == 422
            assert any(e["loc"][-1] == "message" for e in r.json()["detail"])
            r = await client.post(
                "/webhooks/rest/webhook", json={"sender": "a b/c", "message": "x"}
            )
            assert r.status_code == 422
            r = await client.post(
                "/webhooks/rest/webhook",
                content=b"{not json",
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 422
            r = await client.post("/webhooks/rest/webhook", json={"message": "   "})
            assert r.status_code == 422 and r.json()["detail"] == "message is empty"
    finally:
        await live.stop()


async def test_html_has_csp_and_json_has_no_html_type(bus: Bus, tmp_path) -> None:
    from bots.web.app import create_gateway_app

    from .conftest import LiveServer, SimpleTurn, make_settings

    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    app = create_gateway_app(
        bus,
        ScriptedDialogue(),
        issuer=TEST_ISSUER,
        settings=make_settings(),
        static_dir=tmp_path,
        turn_factory=SimpleTurn,
    )
    live = LiveServer(app)
    await live.start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            r = await client.get("/")
            assert r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "object-src 'none'" in csp
            assert "frame-ancestors" in csp
            r = await client.get("/api/bots")
            assert r.headers["content-type"] == "application/json"
            assert "content-security-policy" not in r.headers
            assert [b["name"] for b in r.json()] == ["chatbot", "support", "ops"]
    finally:
        await live.stop()


async def test_session_issue_renew_and_reject(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue())
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            first = (await client.post("/api/session")).json()
            assert first["sender"].startswith("w-") and len(first["sender"]) == 34
            renewed = (await client.post("/api/session", json={"token": first["token"]})).json()
            assert renewed["sender"] == first["sender"] and renewed["renewed"] is True
            forged = (
                await client.post("/api/session", json={"token": first["token"] + "x"})
            ).json()
            assert forged["sender"] != first["sender"] and forged["renewed"] is False
    finally:
        await live.stop()


def test_signer_rejects_other_secret_and_expired() -> None:
    a = SessionSigner("secret-a", 3600)
    b = SessionSigner("secret-b", 3600)
    token, session = a.issue()
    assert a.verify(token) == session and token.startswith("fds_")
    for bad in (None, "", "garbage", token[:-2] + "zz", token[4:], "fds_" + "x" * 3000):
        try:
            a.verify(bad)
        except InvalidSession:
            pass
        else:
            raise AssertionError(f"{bad!r} accepted")
    try:
        b.verify(token)
    except InvalidSession as exc:
        assert "invalid" in str(exc)
    else:
        raise AssertionError("token of another secret accepted")


def test_a_remembered_session_token_still_expires() -> None:
    """Verified tokens are remembered for speed, never past their validity."""
    signer = SessionSigner("secret-a", 60)
    token, session = signer.issue()
    assert signer.verify(token) == session
    assert signer.verify(token) == session  # from memory
    with pytest.raises(InvalidSession, match="expired"):
        signer.verify(token, now=time.time() + 61)
    user = SiteUser(subject="u1", name=None, email=None, expires_at=int(time.time()) + 30)
    user_token, user_session = signer.issue(user=user)
    assert signer.verify(user_token) == user_session
    with pytest.raises(InvalidSession, match="expired"):
        signer.verify(user_token, now=time.time() + 31)


async def test_rate_limiter_window_slides() -> None:
    now = [1000.0]
    limits = RateLimits(BoundedMemoryStorage(clock=lambda: now[0]))
    rate = Rate("caller", 2, 10.0, "messages")
    await limits.hit(rate, "k")
    now[0] = 1001.0
    await limits.hit(rate, "k")
    now[0] = 1002.0
    try:
        await limits.hit(rate, "k")
    except RateLimited as exc:
        assert exc.retry_after == 8 and exc.limit == "caller"
    else:
        raise AssertionError("third hit allowed")
    now[0] = 1010.5
    await limits.hit(rate, "k")  # the first hit left the window


async def test_bus_down_is_503_with_reason(nats_server) -> None:
    from events.bus import Bus as _Bus

    fast = await _Bus.connect(nats_server.url, publish_timeout=1.0)
    live = await start_gateway(fast, ScriptedDialogue())
    try:
        await nats_server.stop()
        token, _ = live.app.state.gateway.signer.issue()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=live.url, timeout=30, headers=headers) as client:
            r = await client.post("/webhooks/rest/webhook", json={"message": "hi"})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert "message bus is not reachable" in r.json()["detail"]
    finally:
        await live.stop()
        await fast.close()
