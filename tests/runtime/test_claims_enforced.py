"""The runtime believes only signed claims: every way to forge or misuse one is refused.

Each refusal is checked on a real nats-server: the caller gets ``denied``, the handler never
runs, and a ``security.claim_rejected`` event says why.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from backend_services.runtime import HandlerContext, Service, ServiceRunner
from events import subjects
from events.bus import Bus
from events.claims import ClaimIssuer, SigningKey, system_actor
from events.envelope import Actor, Conversation, Envelope
from events.micro import CLAIM_HEADER, ServiceClient, micro_subject
from events.payloads import CLAIM_REJECTED, Reply
from tests.claims import TEST_ISSUER, TEST_KEY, signed, signed_runner

USER = Actor(id="site:u1", name="Uma", roles=("user",))
ADMIN = Actor(id="site:boss", name="Boss", roles=("admin", "user"))


class Empty(BaseModel):
    """No input."""


class Who(BaseModel):
    """Who the handler saw."""

    actor: str
    roles: list[str]
    email: str | None = None


@pytest.fixture
async def runner(bus: Bus) -> AsyncIterator[tuple[ServiceRunner, list[str]]]:
    calls: list[str] = []
    svc = Service("vault")

    @svc.handler("whoami")
    async def whoami(payload: Empty, ctx: HandlerContext) -> Who:
        calls.append(ctx.actor.id)
        return Who(actor=ctx.actor.id, roles=list(ctx.actor.roles), email=ctx.verified_email)

    @svc.handler("admin_only", roles={"admin"})
    async def admin_only(payload: Empty, ctx: HandlerContext) -> Who:
        calls.append(ctx.actor.id)
        return Who(actor=ctx.actor.id, roles=list(ctx.actor.roles))

    @svc.handler("internal", roles={"system"}, internal=True)
    async def internal(payload: Empty, ctx: HandlerContext) -> Who:
        calls.append(ctx.actor.id)
        return Who(actor=ctx.actor.id, roles=list(ctx.actor.roles))

    started = signed_runner(svc, bus)
    await started.start()
    try:
        yield started, calls
    finally:
        await started.stop(grace=1)


def _intent(action: str, actor: Actor = USER, conv_id: str | None = None) -> Envelope:
    return Envelope.new(
        subjects.intent_type("vault", action),
        {},
        conversation=Conversation(channel="web", id=conv_id or f"c-{uuid.uuid4().hex[:8]}"),
        actor=actor,
    )


async def _reply(bus: Bus, intent: Envelope) -> Reply:
    start = await bus.last_sequence()
    await bus.publish(intent)
    conv = intent.conversation
    flt = subjects.events_filter(channel=conv.channel, conversation_id=conv.id)
    async with asyncio.timeout(15):
        async for _, env in bus.tail(flt, from_seq=start + 1):
            if env.type == "reply" and env.correlation_id == intent.correlation_id:
                return env.payload_as(Reply)
    raise AssertionError("no reply")


async def _refusals(bus: Bus) -> list[Envelope]:
    return [
        env
        async for _, env in bus.tail(subjects.ALL_EVENTS, from_seq=1, stop_at_end=True)
        if env.type == CLAIM_REJECTED
    ]


def _with_claim(intent: Envelope, claim: str | None) -> Envelope:
    return intent.model_copy(update={"claim": claim})


def _tampered(token: str) -> str:
    header, body, signature = token.split(".")
    flipped = ("A" if signature[5] != "A" else "B").join((signature[:5], signature[6:]))
    return f"{header}.{body}.{flipped}"


async def test_a_signed_intent_runs_as_the_claim_says(
    bus: Bus, runner: tuple[ServiceRunner, list[str]]
) -> None:
    # The envelope's own actor claims to be an admin; the claim says a plain user.
    intent = signed(_intent("admin_only"))
    forged_actor = intent.model_copy(update={"actor": ADMIN})
    reply = await _reply(bus, forged_actor)
    assert reply.status == "denied" and "admin" in reply.text
    ok = await _reply(bus, signed(_intent("whoami")))
    assert ok.status == "ok" and ok.data == {"actor": "site:u1", "roles": ["user"], "email": None}


@pytest.mark.parametrize(
    ("make_claim", "reason"),
    [
        (lambda intent: None, "missing"),
        (lambda intent: "not-a-jwt", "malformed"),
        (
            lambda intent: ClaimIssuer(SigningKey.generate()).issue(
                ADMIN, "vault", conversation=("web", intent.conversation.id)
            ),
            "unknown_key",
        ),
        (
            lambda intent: _tampered(
                TEST_ISSUER.issue(ADMIN, "vault", conversation=("web", intent.conversation.id))
            ),
            "bad_signature",
        ),
        (
            lambda intent: TEST_ISSUER.issue(
                ADMIN, "billing", conversation=("web", intent.conversation.id)
            ),
            "wrong_audience",
        ),
        (
            lambda intent: TEST_ISSUER.issue(ADMIN, "vault", conversation=("web", "someone-else")),
            "wrong_conversation",
        ),
        (
            lambda intent: ClaimIssuer(TEST_KEY, clock=lambda: 1_000_000.0).issue(
                ADMIN, "vault", conversation=("web", intent.conversation.id)
            ),
            "expired",
        ),
    ],
)
async def test_untrusted_claims_are_refused_on_the_intent_door(
    bus: Bus, runner: tuple[ServiceRunner, list[str]], make_claim, reason: str
) -> None:
    _, calls = runner
    intent = _intent("admin_only", ADMIN)
    reply = await _reply(bus, _with_claim(intent, make_claim(intent)))
    assert reply.status == "denied"
    assert ("expired" in reply.text) == (reason == "expired")
    assert calls == []  # the handler never ran
    refusals = await _refusals(bus)
    assert [(r.payload["reason"], r.payload["door"]) for r in refusals] == [(reason, "intent")]
    assert refusals[0].payload["claimed_actor"] == "site:boss"
    assert refusals[0].actor.id == "system:vault"


async def test_internal_actions_have_no_intent_door_and_need_a_system_claim(
    bus: Bus, runner: tuple[ServiceRunner, list[str]]
) -> None:
    _, calls = runner
    by_intent = await _reply(bus, signed(_intent("internal", ADMIN)))
    assert by_intent.status == "invalid" and "no action 'internal'" in by_intent.text
    client = ServiceClient(bus, TEST_ISSUER)
    as_admin = await client.call("vault", "internal", {}, ADMIN, conversation=("api", "x"))
    assert as_admin.status == "denied"
    assert calls == []
    as_system = await client.call("vault", "internal", {}, system_actor("gateway"))
    assert as_system.status == "ok" and as_system.data["actor"] == "system:gateway"


async def test_the_request_door_needs_a_claim_too(
    bus: Bus, runner: tuple[ServiceRunner, list[str]]
) -> None:
    _, calls = runner
    subject = micro_subject("vault", "whoami")
    # A bare payload, with the old actor header: refused.
    header_actor = json.dumps({"id": "site:boss", "roles": ["admin"]})
    bare = await bus.request(subject, b"{}", headers={"Fd-Actor": header_actor})
    assert Reply.model_validate_json(bare).status == "denied"
    # A whole envelope that names an admin but carries no claim: refused.
    whole = await bus.request(subject, _intent("whoami", ADMIN).to_bytes())
    assert Reply.model_validate_json(whole).status == "denied"
    # A claim for another service in the header: refused.
    other = TEST_ISSUER.issue(ADMIN, "billing", conversation=("api", "x"))
    wrong = await bus.request(subject, b"{}", headers={CLAIM_HEADER: other})
    assert Reply.model_validate_json(wrong).status == "denied"
    assert calls == []
    reasons = [(r.payload["reason"], r.payload["door"]) for r in await _refusals(bus)]
    assert reasons == [
        ("missing", "request"),
        ("missing", "request"),
        ("wrong_audience", "request"),
    ]
    # The gateway's way: a header claim, with an email it verified.
    good = TEST_ISSUER.issue(USER, "vault", conversation=("api", "x"), email="uma@example.com")
    answered = Reply.model_validate_json(
        await bus.request(subject, b"{}", headers={CLAIM_HEADER: good})
    )
    assert answered.status == "ok"
    assert answered.data == {"actor": "site:u1", "roles": ["user"], "email": "uma@example.com"}
