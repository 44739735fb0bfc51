"""Payloads of the shipped skills match what the services accept."""

from __future__ import annotations


async def _intent(chat, text, bot="chatbot"):
    out = await chat(bot).say(text)
    assert len(out.intents) == 1, (text, out.text)
    env = out.intents[0]
    return env.type, env.payload


async def test_summarize_takes_exactly_one_source(chat):
    assert await _intent(chat, "summarise ticket #42") == (
        "intent.generative.summarize",
        {"ticket": 42},
    )
    kind, payload = await _intent(
        chat, "summarise this: the VPN dropped three times and the user lost unsaved work"
    )
    assert kind == "intent.generative.summarize"
    assert payload == {"text": "the VPN dropped three times and the user lost unsaved work"}
    c = chat()
    out = await c.say("can you summarise this conversation")
    assert out.intents[0].payload == {"conversation": {"channel": "web", "id": c.conversation.id}}


async def test_draft_copy_and_expert_payloads(chat):
    assert await _intent(chat, "draft a response for ticket #42") == (
        "intent.generative.draft_reply",
        {"ticket": 42},
    )
    kind, payload = await _intent(chat, "write ad copy for the webinar")
    assert kind == "intent.generative.marketing_copy" and set(payload) == {"product"}
    kind, payload = await _intent(chat, "ask the ops expert how to roll back a deploy")
    assert kind == "intent.generative.expert_ask"
    assert payload == {"expert": "ops", "question": "ask the ops expert how to roll back a deploy"}
    kind, payload = await _intent(chat, "how do I renew the TLS certificate?", bot="expert")
    assert payload["expert"] == "ops"  # the bare expert persona means the first expert
    kind, payload = await _intent(chat, "what is our VPN MTU?", bot="expert:netops")
    assert payload["expert"] == "netops"  # any expert of the generative service


async def test_roles_questions(chat):
    assert await _intent(chat, "what are my roles?") == ("intent.management.whoami", {})
    c = chat()
    out = await c.say("/user_roles")  # no name given: the form asks for it
    assert out.requested_slot == "username"
    out = await c.say("ana")
    assert [(e.type, e.payload) for e in out.intents] == [
        ("intent.management.user_get", {"user": "ana"})
    ]


async def test_services_status_for_one_service(chat):
    assert await _intent(chat, "is the marketing service up?") == (
        "intent.management.services_status",
        {"service": "marketing"},
    )


async def test_comment_and_rating_forms(chat):
    c = chat("support")
    out = await c.say("add a comment to ticket #8")
    assert out.requested_slot == "comment"
    out = await c.say("The user restarted the laptop and it works again.")
    assert [(e.type, e.payload) for e in out.intents] == [
        (
            "intent.management.ticket_comment",
            {"ticket": 8, "body": "The user restarted the laptop and it works again."},
        )
    ]
    out = await c.say("rate ticket #8")
    assert out.requested_slot == "rating"
    out = await c.say('/inform{"rating": "5"}')
    assert out.intents[0].payload == {"ticket": 8, "score": 5}
