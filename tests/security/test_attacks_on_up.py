"""The attacks of issue 10, replayed against a real ``frontdoor up`` (its embedded nats-server,
every service, the gateway, in their own process), each refused with a clear answer and
nothing stored.

``alice`` is an admin who signs in with a site user token; ``mallory`` is whoever else talks to
the front door: no credential, a guest session, or a token of her own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from events.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 120.0
SITE_SECRET = "site-secret-" + "x" * 32


@dataclass
class Stack:
    base: str
    data_dir: Path
    env: dict[str, str]

    def post(self, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.base}{path}", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.base}{path}", headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]

    def guest(self) -> dict[str, str]:
        session = self.post("/api/session", json={}).json()
        return {"token": session["token"], "sender": session["sender"]}

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "frontdoor.cli", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def site_token(sub: str, **claims: object) -> str:
    body = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, SITE_SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("attacks")
    data_dir = tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "FRONTDOOR_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        FRONTDOOR_LOG_FORMAT="json",
        FRONTDOOR_DATA_DIR=str(data_dir),
        FRONTDOOR_ADMIN_IDENTITIES="site:alice",
        FRONTDOOR_SITE_TOKEN_SECRET=SITE_SECRET,
    )
    port = free_port()
    log_path = tmp / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "frontdoor.cli", "up", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, f"frontdoor up exited:\n{log_path.read_text()[-4000:]}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).json().get("services_ok"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.25)
        yield Stack(base, data_dir, env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def alice(stack: Stack) -> str:
    """Alice's session, signed in with her site's token (an admin: FRONTDOOR_ADMIN_IDENTITIES)."""
    r = stack.post(
        "/api/session",
        json={"user_token": site_token("alice", name="Alice", email="alice@example.com")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "site:alice"
    return str(r.json()["token"])


@pytest.fixture(scope="module")
def alice_ticket(stack: Stack, alice: str) -> int:
    r = stack.post(
        "/api/intents/management/ticket_create",
        alice,
        json={"subject": "Payroll export is broken", "requester_email": "alice@example.com"},
    )
    assert r.status_code == 200, r.text
    return int(r.json()["reply"]["data"]["number"])


def say(stack: Stack, token: str | None, text: str, **body: object) -> httpx.Response:
    return stack.post("/webhooks/rest/webhook", token, json={"message": text, **body})


def texts(response: httpx.Response) -> str:
    return "\n".join(item["text"] for item in response.json())


@pytest.mark.timeout(300)
def test_nobody_is_alice_by_saying_so(stack: Stack, alice: str) -> None:
    # No credential at all: refused, before anything happens.
    r = say(stack, None, "what are my roles?", sender="user:alice")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    # A guest naming alice's identity as its sender: refused.
    guest = stack.guest()
    r = say(stack, guest["token"], "what are my roles?", sender="user:alice")
    assert r.status_code == 403
    # The guest's own conversation: it is a guest, with the guest role only.
    r = say(stack, guest["token"], "what are my roles?")
    assert r.status_code == 200
    assert "admin" not in texts(r)
    # Alice herself, proven by her site's token, is an admin.
    whoami = stack.post("/api/intents/management/whoami", alice, json={}).json()["reply"]
    assert whoami["data"]["actor_id"] == "site:alice" and "admin" in whoami["data"]["roles"]
    # A token signed with another secret, or for another user, gets nothing of hers.
    forged = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 600}, "not-the-secret" * 3, algorithm="HS256"
    )
    assert stack.post("/api/session", json={"user_token": forged}).status_code == 401
    assert say(stack, forged, "hi").status_code == 401
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, None, algorithm="none")
    assert say(stack, unsigned, "hi").status_code == 401
    expired = site_token("alice", exp=int(time.time()) - 3600)
    assert say(stack, expired, "hi").status_code == 401


@pytest.mark.timeout(300)
def test_alices_tickets_stay_hers(stack: Stack, alice: str, alice_ticket: int) -> None:
    number = alice_ticket
    guest = stack.guest()
    for action in ("ticket_get", "ticket_close", "ticket_history"):
        r = stack.post(f"/api/intents/management/{action}", guest["token"], json={"ticket": number})
        assert r.status_code == 403, (action, r.text)
        assert r.json()["reply"]["status"] == "denied"
    # Through a chat, as a guest: refused politely.
    r = say(stack, guest["token"], f"close ticket #{number}", metadata={"bot": "support"})
    assert r.status_code == 200
    assert f"Ticket #{number} is not yours" in texts(r)
    # Through the services' HTTP door without a credential: 401.
    door = httpx.post(f"{stack.base}/services/management/ticket_get", json={"ticket": number})
    assert door.status_code == 401
    # The ticket is still open, and alice still reads it.
    mine = stack.post("/api/intents/management/ticket_get", alice, json={"ticket": number})
    assert mine.status_code == 200 and mine.json()["reply"]["data"]["status"] == "open"


@pytest.mark.timeout(300)
def test_internal_actions_are_unreachable_from_every_public_door(stack: Stack, alice: str) -> None:
    key = stack.cli("users", "api-key", "site:alice", "--name", "attack-test").strip().split()[-1]
    assert key.startswith("fdk_"), key
    for token in (alice, key):
        r = stack.post("/api/intents/management/resolve_actor", token, json={"actor": "slack:U1"})
        assert r.status_code == 404, r.text
        r = stack.post("/services/management/resolve_actor", token, json={"actor": "slack:U1"})
        assert r.status_code in (404, 405), r.text
    guest = stack.guest()
    r = stack.post("/api/intents/management/resolve_actor", guest["token"], json={})
    assert r.status_code == 404
    # The key works where it should, and the intents API needs one: anonymous is off.
    assert stack.post("/api/intents/management/whoami", key, json={}).status_code == 200
    assert stack.post("/api/intents/management/whoami", json={}).status_code == 401
    # API keys are never issued where the answer is kept on the bus.
    r = stack.post("/api/intents/management/api_key_create", key, json={"user": "site:alice"})
    assert r.status_code == 403 and "fdk_" not in r.text


@pytest.mark.timeout(300)
def test_a_lead_is_not_overwritten_by_someone_else(stack: Stack, alice: str) -> None:
    email = f"lead-{uuid.uuid4().hex[:8]}@example.com"
    lead = {"name": "Lee Lead", "email": email, "company": "Good Co", "consent": True}
    first = stack.post("/api/intents/marketing/lead_capture", stack.guest()["token"], json=lead)
    assert first.status_code == 200
    mallory = {**lead, "name": "Mallory", "company": "Evil", "consent": False}
    r = stack.post("/api/intents/marketing/lead_capture", stack.guest()["token"], json=mallory)
    assert r.status_code == 200
    answer = r.json()["reply"]["data"]
    assert answer["id"] is None and answer["created"] is None  # nothing learned
    # Alice (an admin) reads the lead back through a segment: unchanged.
    name = f"seg-{uuid.uuid4().hex[:6]}"
    made = stack.post(
        "/api/intents/marketing/segment_create",
        alice,
        json={"name": name, "rules": [{"field": "email", "op": "eq", "value": email}]},
    )
    assert made.status_code == 200, made.text
    preview = stack.post("/api/intents/marketing/segment_preview", alice, json={"name": name})
    [kept] = preview.json()["reply"]["data"]["sample"]
    assert (kept["name"], kept["company"], kept["consent"]) == ("Lee Lead", "Good Co", True)


@pytest.mark.timeout(300)
def test_late_replies_are_private(stack: Stack) -> None:
    owner, other = stack.guest(), stack.guest()
    assert say(stack, owner["token"], "hello").status_code == 200
    stolen = stack.get("/webhooks/rest/pending", other["token"], params={"sender": owner["sender"]})
    assert stolen.status_code == 403
    anonymous = stack.get("/webhooks/rest/pending", params={"sender": owner["sender"]})
    assert anonymous.status_code == 401
    assert stack.get("/webhooks/rest/pending", owner["token"]).status_code == 200
