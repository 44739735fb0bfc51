"""The agent workspace's HTTP API against a real nats-server, management service and gateway:
sign-in, roles, CSRF, rate limits, the live inbox, a hand-off from claim to rating, tickets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bots.handoff import HANDOFF_STARTED, HandoffStarted
from bots.turns import IncomingMessage
from bots.web.app import create_gateway_app
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply
from tests.agent.conftest import PASSWORD, AgentStack, agent_stack, as_admin, sign_in
from tests.bots.conftest import LiveServer, make_settings
from tests.claims import TEST_ISSUER

pytestmark = pytest.mark.timeout(120)


class NoDialogue:
    """The bot never speaks in these tests (hand-offs are published directly)."""

    async def handle(self, turn: Any) -> Any:
        raise AssertionError("the dialogue is not used here")


@pytest.fixture
async def stack(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AgentStack]:
    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(tmp_path))
    async with agent_stack(bus, NoDialogue(), tmp_path, agent_signin_failure_limit=3) as running:
        yield running


async def start_handoff(bus: Bus, sender: str, text: str = "I want a human") -> Envelope:
    conv = Conversation(channel="web", id=sender, bot="support")
    started = Envelope.new(
        HANDOFF_STARTED,
        HandoffStarted(bot="support", text=text),
        conversation=conv,
        actor=Actor(id=f"guest:{sender}", name="Gus Guest", roles=("guest",)),
    )
    await bus.publish(started)
    return started


async def events_of(bus: Bus, sender: str, after: int = 0) -> list[tuple[int, Envelope]]:
    flt = subjects.events_filter(channel="web", conversation_id=sender)
    found = []
    async for seq, env in bus.tail(flt, after + 1, stop_at_end=True):
        found.append((seq, env))
    return found


async def wait_for(check: Any, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.1)


async def test_sign_in_roles_and_sign_out(stack: AgentStack) -> None:
    async with stack.client() as http:
        assert (await http.get("/agent/api/session")).status_code == 401
        page = await http.get("/agent")
        assert (
            page.status_code == 200
            and "script-src 'self'" in page.headers["content-security-policy"]
        )

        answer = await http.post("/agent/api/session", json={"user": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/agent" in cookie
        assert "secure" not in cookie  # plain http here; https sets it
        info = answer.json()
        assert info["actor"] == "user:alice" and "agent" in info["roles"]
        assert PASSWORD not in answer.text
        me = await http.get("/agent/api/session")
        assert me.status_code == 200 and me.json()["csrf_token"] == info["csrf_token"]

        # Sign-out needs the CSRF token, then the session is over.
        assert (await http.delete("/agent/api/session")).status_code == 403
        out = await http.delete("/agent/api/session", headers={"X-CSRF-Token": info["csrf_token"]})
        assert out.status_code == 204
        assert (await http.get("/agent/api/session")).status_code == 401

    # A stolen cookie does not outlive the sign-out either.
    async with stack.client() as http:
        await sign_in(http)
        cookie_value = http.cookies["fd_agent"]
        csrf = (await http.get("/agent/api/session")).json()["csrf_token"]
        await http.delete("/agent/api/session", headers={"X-CSRF-Token": csrf})
    async with stack.client(cookies={"fd_agent": cookie_value}) as thief:
        assert (await thief.get("/agent/api/inbox")).status_code == 401


async def test_without_the_agent_role_no_workspace(stack: AgentStack) -> None:
    async with stack.client() as http:
        refused = await http.post("/agent/api/session", json={"user": "uma", "password": PASSWORD})
        assert refused.status_code == 403 and "agent" in refused.json()["detail"]
        assert "fd_agent" not in http.cookies
        assert (await http.get("/agent/api/inbox")).status_code == 401

    # An agent who loses the role is refused at once, session or not.
    async with stack.client() as http:
        await sign_in(http)
        assert (await http.get("/agent/api/inbox")).status_code == 200
        await as_admin(stack.bus, "user_set_roles", {"user": "alice", "roles": []})

        async def refused_now() -> bool:
            return (await http.get("/agent/api/inbox")).status_code == 403

        await wait_for(refused_now)
        assert (await http.get("/agent/api/tickets")).status_code == 403
        assert (await http.get("/agent/api/inbox/stream")).status_code == 403


async def test_wrong_password_refused_and_rate_limited(stack: AgentStack) -> None:
    async with stack.client() as http:
        for _ in range(3):
            bad = await http.post("/agent/api/session", json={"user": "alice", "password": "nope"})
            assert bad.status_code == 401 and bad.json()["detail"] == "Wrong user name or password."
        # The user name is locked for the window, even with the right password.
        limited = await http.post(
            "/agent/api/session", json={"user": "alice", "password": PASSWORD}
        )
        assert limited.status_code == 429 and limited.headers["retry-after"]
        unknown = await http.post("/agent/api/session", json={"user": "ghost", "password": "x"})
        assert unknown.status_code == 401  # an unknown user looks like a wrong password
        invalid = await http.post("/agent/api/session", json={"user": "alice"})
        assert invalid.status_code == 422


async def test_csrf_and_origin_are_required_for_changes(stack: AgentStack) -> None:
    sender = "w-" + uuid.uuid4().hex
    await start_handoff(stack.bus, sender)
    async with stack.client() as http:
        csrf = await sign_in(http)
        inbox = (await http.get("/agent/api/inbox")).json()
        [item] = [c for c in inbox["conversations"] if c["conversation"] == sender]
        path = f"/agent/api/conversations/{item['ref']}/reply"
        body = {"text": "hello"}
        assert (await http.post(path, json=body)).status_code == 403
        wrong = await http.post(path, json=body, headers={"X-CSRF-Token": "x" + csrf})
        assert wrong.status_code == 403
        other_site = await http.post(
            path, json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
        )
        assert other_site.status_code == 403
        cross = await http.post(
            path, json=body, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}
        )
        assert cross.status_code == 403
        login_from_elsewhere = await http.post(
            "/agent/api/session",
            json={"user": "alice", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert login_from_elsewhere.status_code == 403
    replies = [e for _, e in await events_of(stack.bus, sender) if e.type == "reply"]
    assert not [r for r in replies if r.payload.get("service") == "handoff"]


async def read_sse(response: httpx.Response, count: int) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    kind = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((str(kind), json.loads(line[6:])))
            if len(events) >= count:
                return events
    return events


async def test_handoff_claim_reply_note_close_and_rating(stack: AgentStack) -> None:
    bus = stack.bus
    sender = "w-" + uuid.uuid4().hex
    async with stack.client() as http:
        csrf = await sign_in(http)
        headers = {"X-CSRF-Token": csrf}
        async with http.stream("GET", "/agent/api/inbox/stream") as live:
            assert live.headers["content-type"].startswith("text/event-stream")
            lines = live.aiter_lines()
            started = await start_handoff(bus, sender, "my printer is on fire")
            seen: list[tuple[str, Any]] = []
            kind = None
            async with asyncio.timeout(15):
                async for line in lines:
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        seen.append((str(kind), json.loads(line[6:])))
                        if kind == "handoff":
                            break
        assert seen[0][0] == "snapshot"
        change = seen[-1][1]
        assert change["conversation"]["conversation"] == sender
        assert change["conversation"]["text"] == "my printer is on fire"
        assert change["seq"] > seen[0][1]["seq"]
        ref = change["conversation"]["ref"]
        base = f"/agent/api/conversations/{ref}"

        # The user is told a person will answer (the workspace replaces "nobody can be reached").
        async def notified() -> list[str]:
            return [
                e.payload["text"]
                for _, e in await events_of(bus, sender)
                if e.type == "reply" and e.payload.get("action") == "handoff_notified"
            ]

        assert await wait_for(notified)

        claim = await http.post(f"{base}/claim", json={}, headers=headers)
        assert claim.status_code == 200 and claim.json()["agent"] == "user:alice"
        bad_assign = await http.post(f"{base}/claim", json={"agent": "uma"}, headers=headers)
        assert bad_assign.status_code == 422

        for i in range(3):
            answer = await http.post(
                f"{base}/reply", json={"text": f"answer {i}", "client_id": f"c{i}"}, headers=headers
            )
            assert answer.status_code == 200
        again = await http.post(
            f"{base}/reply", json={"text": "answer 0", "client_id": "c0"}, headers=headers
        )
        assert (
            again.json()["id"]
            == (
                await http.post(
                    f"{base}/reply", json={"text": "answer 0", "client_id": "c0"}, headers=headers
                )
            ).json()["id"]
        )
        note = await http.post(f"{base}/note", json={"text": "VIP customer"}, headers=headers)
        assert note.status_code == 200
        empty = await http.post(f"{base}/reply", json={"text": ""}, headers=headers)
        assert empty.status_code == 422
        typing = await http.post(f"{base}/typing", json={"active": True}, headers=headers)
        assert typing.status_code == 204

        view = (await http.get(base)).json()
        kinds = [(e["kind"], e["text"]) for e in view["entries"]]
        assert ("agent", "answer 0") in kinds and ("note", "VIP customer") in kinds
        assert [t for k, t in kinds if k == "agent"] == ["answer 0", "answer 1", "answer 2"]
        assert view["conversation"]["state"] == "claimed"

        # The transcript as a download: the same entries as JSON, and as plain text.
        exported = await http.get(f"{base}/export")
        assert exported.status_code == 200
        assert exported.headers["content-disposition"].startswith("attachment;")
        assert exported.json()["entries"] == view["entries"]
        text = await http.get(f"{base}/export", params={"format": "text"})
        assert text.headers["content-type"].startswith("text/plain")
        lines = text.text.splitlines()
        assert lines[0] == f"Transcript of the web conversation {sender}"
        said = [line.split("UTC  ", 1)[1] for line in lines[2:]]
        assert said.index("Alice Agent (agent): answer 0") < said.index(
            "Alice Agent (agent): answer 2"
        )
        assert "[note] Alice Agent: VIP customer" in said
        assert (await http.get(f"{base}/export", params={"format": "pdf"})).status_code == 422

        close = await http.post(f"{base}/close", json={}, headers=headers)
        assert close.status_code == 200
        late = await http.post(f"{base}/reply", json={"text": "too late"}, headers=headers)
        assert late.status_code == 409

    events = [e for _, e in await events_of(bus, sender)]
    replies = [e.payload_as(Reply) for e in events if e.type == "reply"]
    agent_texts = [r.text for r in replies if r.service == "handoff"]
    assert agent_texts == ["answer 0", "answer 1", "answer 2"]  # in order, the retry stored once
    assert all(
        r.action == "agent_message" and r.data == {"agent": "Alice Agent"}
        for r in replies
        if r.service == "handoff"
    )
    # The private note is never a reply: no user channel can deliver it.
    assert not [r for r in replies if "VIP" in r.text]
    assert [e.payload["text"] for e in events if e.type == "handoff.note"] == ["VIP customer"]
    assert [e.payload["agent"] for e in events if e.type == "handoff.claimed"] == ["user:alice"]

    async def rating_prompt() -> Reply | None:
        for _, e in await events_of(bus, sender):
            if e.type == "reply" and e.payload.get("action") == "handoff_rate":
                return e.payload_as(Reply)
        return None

    prompt = await wait_for(rating_prompt)
    assert [b.payload for b in prompt.buttons] == [f"/rate {n}" for n in range(1, 6)]

    # The user presses "4": the pipeline stores the rating (no ticket: conversation.rated).
    pipeline = stack.app.state.gateway.pipeline
    msg = IncomingMessage(
        channel="web",
        conversation_id=sender,
        text="/rate 4",
        user_id=f"guest:{sender}",
        bot="support",
    )
    await wait_for(lambda: asyncio.sleep(0, pipeline.handoff._to_rate.get(("web", sender, ""))))
    result = await pipeline.handle(msg)
    assert result.reply_ids
    rated = [e for _, e in await events_of(bus, sender) if e.type == "conversation.rated"]
    assert [(e.payload["score"], e.payload["agent"]) for e in rated] == [(4, "user:alice")]
    assert started.id  # the hand-off is over: a second rating is an ordinary message
    assert pipeline.handoff.rating_of(msg.conversation, "/rate 5") is None


async def test_tickets_view_comment_note_and_history(stack: AgentStack) -> None:
    bus = stack.bus
    guest = Actor(id="guest:w-" + "a" * 32, roles=("guest",))
    from events.micro import ServiceClient
    from tests.claims import TEST_ISSUER

    created = await ServiceClient(bus, TEST_ISSUER).call(
        "management",
        "ticket_create",
        {"subject": "VPN drops", "requester_email": "gus@example.org", "priority": "high"},
        guest,
        conversation=("web", "w-" + "a" * 32),
    )
    number = created.data["number"]  # type: ignore[index]
    async with stack.client() as http:
        csrf = await sign_in(http)
        headers = {"X-CSRF-Token": csrf}
        listed = (await http.get("/agent/api/tickets", params={"status": "open"})).json()
        assert [t["number"] for t in listed["items"]] == [number]
        assert listed["items"][0]["sla_due_at"]
        due = (await http.get("/agent/api/tickets", params={"sla_due_minutes": 30})).json()
        assert due["items"] == []  # high: first response due in 60 min
        due = (await http.get("/agent/api/tickets", params={"sla_due_minutes": 90})).json()
        assert [t["number"] for t in due["items"]] == [number]
        assert (await http.get("/agent/api/tickets", params={"status": "lost"})).status_code == 422

        base = f"/agent/api/tickets/{number}"
        assert (await http.post(f"{base}/assign", json={"assignee": "me"}, headers=headers)).json()[
            "assignee"
        ] == "alice"
        mine = (await http.get("/agent/api/tickets", params={"assignee": "me"})).json()
        assert [t["number"] for t in mine["items"]] == [number]
        updated = await http.post(f"{base}/update", json={"status": "pending"}, headers=headers)
        assert updated.json()["status"] == "pending"
        wrong = await http.post(f"{base}/update", json={"status": "pending"}, headers=headers)
        assert wrong.status_code == 422
        await http.post(f"{base}/comment", json={"body": "We are on it."}, headers=headers)
        await http.post(
            f"{base}/comment",
            json={"body": "Router firmware bug", "public": False},
            headers=headers,
        )
        ticket = (await http.get(base)).json()
        assert [(c["body"], c["public"]) for c in ticket["comments"]] == [
            ("We are on it.", True),
            ("Router firmware bug", False),
        ]
        history = (await http.get(f"{base}/history")).json()
        assert [h["action"] for h in history["entries"]][:1] == ["created"]
        assert (await http.get("/agent/api/tickets/99999")).status_code == 404

    # The requester's own view never holds the internal note.
    mine = await ServiceClient(bus, TEST_ISSUER).call(
        "management", "ticket_get", {"ticket": number}, guest, conversation=("web", "w-" + "a" * 32)
    )
    assert [c["body"] for c in mine.data["comments"]] == ["We are on it."]  # type: ignore[index]
    commented = []
    async for _, env in bus.tail(
        subjects.events_filter(envelope_type="ticket.commented"), 1, stop_at_end=True
    ):
        commented.append(env.payload)
    assert [(c["public"]) for c in commented] == [True, False]
    # No reply anywhere on the bus carries the internal note.
    async for _, env in bus.tail(
        subjects.events_filter(envelope_type="reply"), 1, stop_at_end=True
    ):
        assert "Router firmware bug" not in str(env.payload.get("text", ""))


async def test_saved_replies(stack: AgentStack) -> None:
    async with stack.client() as http:
        csrf = await sign_in(http)
        assert (await http.get("/agent/api/saved-replies")).json() == {"replies": []}
        body = {"replies": [{"title": "Hello", "text": "Hi! How can I help?"}]}
        assert (await http.put("/agent/api/saved-replies", json=body)).status_code == 403
        saved = await http.put(
            "/agent/api/saved-replies", json=body, headers={"X-CSRF-Token": csrf}
        )
        assert saved.status_code == 200
        assert (await http.get("/agent/api/saved-replies")).json() == body


async def test_signing_out_on_one_gateway_ends_the_session_on_every_replica(
    stack: AgentStack,
) -> None:
    # A second replica: the same bus and session secret, its own process memory.
    second = create_gateway_app(
        stack.bus, NoDialogue(), issuer=TEST_ISSUER, settings=make_settings(resolve_roles=True)
    )
    replica = LiveServer(second)
    await replica.start()
    try:
        async with stack.client() as http:
            csrf = await sign_in(http)
            cookie_value = http.cookies["fd_agent"]
        async with httpx.AsyncClient(
            base_url=replica.url, cookies={"fd_agent": cookie_value}, timeout=20.0
        ) as there:
            assert (await there.get("/agent/api/inbox")).status_code == 200  # one session
        async with stack.client(cookies={"fd_agent": cookie_value}) as http:
            out = await http.delete("/agent/api/session", headers={"X-CSRF-Token": csrf})
            assert out.status_code == 204
        async with httpx.AsyncClient(
            base_url=replica.url, cookies={"fd_agent": cookie_value}, timeout=20.0
        ) as thief:
            refused = await thief.get("/agent/api/inbox")
            assert refused.status_code == 401
            assert "signed out" in refused.json()["detail"]
    finally:
        await replica.stop()


async def test_an_admin_exports_everything_about_a_person_an_agent_may_not(
    stack: AgentStack,
) -> None:
    uma_said = Envelope.new(
        "message.received",
        {"text": "hello from Uma"},
        conversation=Conversation(channel="web", id="w-uma"),
        actor=Actor(id="user:uma", name="Uma", roles=("user",)),
    )
    await stack.bus.publish(uma_said)
    async with stack.client() as http:
        await sign_in(http)
        refused = await http.get("/agent/api/people/export", params={"person": "uma"})
        assert refused.status_code == 403  # user records are for admins
        await as_admin(stack.bus, "user_set_roles", {"user": "alice", "roles": ["agent", "admin"]})

        async def exported() -> Any:
            answer = await http.get("/agent/api/people/export", params={"person": "uma"})
            return answer if answer.status_code == 200 else None

        answer = await wait_for(exported)
        assert answer.headers["content-disposition"].startswith("attachment;")
        document = answer.json()
        assert document["user"]["email"] == "uma@example.com"
        [conversation] = document["conversations"]
        assert [e["text"] for e in conversation["entries"]] == ["hello from Uma"]
        missing = await http.get("/agent/api/people/export", params={"person": "nobody"})
        assert missing.status_code in (404, 422)
