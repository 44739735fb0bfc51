"""Button payload syntax, conversation keys, session expiry, bot switching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.envelope import Actor, Conversation
from skills.dialogue import (
    DialogueEngine,
    InMemoryConversationStore,
    UserTurn,
    conversation_key,
    make_payload,
    parse_payload,
)


def test_payload_syntax():
    parsed = parse_payload('/ticket_status{"ticket_id": "#42", "priority": "high"}')
    assert parsed is not None and parsed.intent.name == "ticket_status"
    assert parsed.intent.confidence == 1.0
    assert {(e.entity, e.value) for e in parsed.entities} == {
        ("ticket_id", "#42"),
        ("priority", "high"),
    }
    assert parse_payload("/greet").entities == []
    assert parse_payload("/greet{not json}") is None
    assert parse_payload('/greet["a"]') is None
    assert parse_payload("hello /greet") is None
    assert parse_payload("/") is None
    assert make_payload("bot_switch", {"bot": "support"}) == '/bot_switch{"bot":"support"}'
    assert parse_payload(make_payload("x", {"é": "ü"})).entities[0].value == "ü"


def test_conversation_keys_are_valid_kv_keys_and_distinct():
    slack = Conversation(channel="slack", id="C1", thread="1700000000.123")
    key = conversation_key(slack)
    assert key.startswith("slack.") and all(c.isalnum() or c in "-_.=" for c in key)
    assert key != conversation_key(slack.model_copy(update={"thread": None}))
    weird = Conversation(channel="web", id="a b*>/~.é")
    assert all(c.isalnum() or c in "-_.=" for c in conversation_key(weird))


async def test_session_expiry_forgets_an_abandoned_form(nlu, registry):
    now = [datetime(2026, 1, 1, 9, 0, tzinfo=UTC)]
    engine = DialogueEngine(nlu, InMemoryConversationStore(), registry, clock=lambda: now[0])
    conv = Conversation(channel="web", id="idle")

    def turn(text: str) -> UserTurn:
        return UserTurn(text=text, conversation=conv, actor=Actor(id="a"), bot="support")

    out = await engine.handle(turn("open a ticket"))
    assert out.form == "ticket_form"
    now[0] += timedelta(minutes=30)
    out = await engine.handle(turn("Printer jammed"))
    assert out.requested_slot == "description"  # still the same session
    now[0] += timedelta(minutes=registry.domain.session_config.session_expiration_time + 1)
    out = await engine.handle(turn("hello"))
    assert out.form is None and "ticket" in out.text


async def test_switch_to_an_expert_and_back(chat):
    c = chat("chatbot")
    out = await c.say("let me talk to the security expert")
    assert out.bot == "expert:security" and "security expert" in out.text
    out = await c.say("is TLS 1.1 still acceptable for internal services?")
    assert out.intents[0].payload["expert"] == "security"
    out = await c.say('/bot_switch{"bot": "chatbot"}')
    assert out.bot == "chatbot" and "Frontdoor assistant" in out.text
    out = await c.say("switch bots")
    titles = [b.title for b in out.messages[0].buttons]
    assert "Frontdoor support" in titles and "Security expert" in titles
