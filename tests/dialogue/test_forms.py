"""Forms, slot filling, validation, cancel, digressions, fallback, clarification, personas."""

from __future__ import annotations

import re
import uuid

from events.envelope import Actor, Conversation
from events.payloads import IntentDetected, Reply
from skills.dialogue import DialogueEngine, InMemoryConversationStore, UserTurn
from skills.nlu.types import EntityMatch
from tests.dialogue.conftest import FixedNLU


def _ticket(outcome):  # the ticket_create envelope of a turn, if any
    found = [e for e in outcome.intents if e.type == "intent.management.ticket_create"]
    return found[0] if found else None


async def test_ticket_form_asks_each_slot_in_order_and_emits_the_intent(chat):
    c = chat("support")
    out = await c.say("I need to open a ticket")
    assert out.form == "ticket_form" and out.requested_slot == "subject"
    assert re.search(r"(?i)subject", out.text)
    out = await c.say("VPN drops every ten minutes")
    assert out.requested_slot == "description"
    out = await c.say("Since this morning the VPN client disconnects and I lose my SSH sessions.")
    assert out.requested_slot == "contact_email" and re.search(r"(?i)e-?mail", out.text)
    out = await c.say("ana@example.com")
    assert out.requested_slot == "priority"
    assert [b.title for b in out.messages[-1].buttons] == ["low", "normal", "high", "urgent"]
    assert not out.intents
    out = await c.say("high")
    assert out.form is None
    env = _ticket(out)
    assert env is not None
    assert env.payload == {
        "subject": "VPN drops every ten minutes",
        "description": "Since this morning the VPN client disconnects and I lose my SSH sessions.",
        "requester_email": "ana@example.com",
        "priority": "high",
        "requester_name": "Ana Tester",
    }
    assert env.actor == c.actor
    assert env.conversation.id == c.conversation.id and env.conversation.bot == "support"
    assert "opening your ticket" in out.text  # the skill's "working" message


async def test_turn_id_is_the_correlation_id_and_ids_are_deterministic(nlu, registry):
    engine = DialogueEngine(nlu, InMemoryConversationStore(), registry)
    conv = Conversation(channel="slack", id="C1", thread="1700000000.123")
    turn = UserTurn(text="what's up with #42?", conversation=conv, actor=Actor(id="U1"))
    out = await engine.handle(turn)
    (intent,) = out.intents
    assert intent.type == "intent.management.ticket_get"
    assert intent.payload == {"ticket": 42}
    assert intent.correlation_id == turn.id and intent.causation_id == turn.id
    assert intent.conversation.thread == "1700000000.123"
    (detected,) = out.events
    assert detected.type == "intent.detected" and detected.correlation_id == turn.id
    body = detected.payload_as(IntentDetected)
    assert body.intent == "ticket_status" and body.text == "what's up with #42?"
    again = await engine.handle(turn)  # the same turn handled twice: same envelope ids
    assert again.intents[0].id == intent.id and again.events[0].id == detected.id


async def test_slots_in_the_first_message_are_not_asked_again(chat):
    c = chat("support")
    out = await c.say("open a high priority ticket about VPN drops")
    assert out.requested_slot == "description", out.text
    out = await c.say("The tunnel resets whenever I switch wifi networks.")
    assert out.requested_slot == "contact_email"
    out = await c.say("ana@example.com")
    env = _ticket(out)
    assert env is not None, out.text
    assert env.payload["subject"] == "VPN drops"
    assert env.payload["priority"] == "high"


async def test_bad_email_is_refused_with_the_reason_then_accepted(chat):
    c = chat("support")
    for text in ["open a ticket please", "Printer on floor 3 is jammed", "It shows error E-203."]:
        out = await c.say(text)
    assert out.requested_slot == "contact_email"
    out = await c.say("not-an-email")
    assert out.requested_slot == "contact_email"
    assert "doesn't look like a valid email address" in out.text
    assert "@" in out.text  # says what is wrong: no @-sign
    assert re.search(r"(?i)e-?mail address can we reach you", out.text)  # and asks again
    out = await c.say("bob@example")
    assert out.requested_slot == "contact_email" and "valid email" in out.text
    out = await c.say("bob@example.org")
    assert out.requested_slot == "priority"
    out = await c.say("priority should be really critical")
    assert _ticket(out).payload["priority"] == "urgent"  # synonym


async def test_bad_priority_is_refused(chat):
    c = chat("support")
    await c.say("open a ticket about the broken projector in room 4")
    await c.say("It shows no picture at all since Monday.")
    await c.say("ana@example.com")
    out = await c.say("purple")
    assert out.requested_slot == "priority"
    assert "low, normal, high or urgent" in out.text
    out = await c.say('/inform{"priority": "low"}')  # the button
    assert _ticket(out).payload["priority"] == "low"


async def test_several_slots_in_one_message(chat):
    c = chat("support")
    await c.say("I need to open a ticket")
    await c.say("Mail server down")
    out = await c.say("Nobody can send mail since 9am. Reach me at ops@example.com, it's urgent")
    assert out.form is None, out.text
    env = _ticket(out)
    assert env.payload["requester_email"] == "ops@example.com"
    assert env.payload["priority"] == "urgent"
    assert env.payload["description"].startswith("Nobody can send mail")


async def test_cancel_stops_the_form_politely(chat):
    for phrase in ["never mind", "cancel", "forget it", "stop"]:
        c = chat("support")
        await c.say("I want to report a problem")
        out = await c.say(phrase)
        assert out.form is None, phrase
        assert "cancelled" in out.text, (phrase, out.text)
        assert not out.intents
        out = await c.say("hello")
        assert out.form is None and re.search(r"(?i)ticket", out.text)


async def test_cancel_also_works_on_a_typed_slot(chat):
    c = chat("support")
    await c.say("open a ticket about printer jam")
    await c.say("Paper stuck in tray 2.")
    out = await c.say("never mind")
    assert out.form is None and "cancelled" in out.text


async def test_digression_is_answered_then_the_question_is_asked_again(chat):
    c = chat("support")
    await c.say("open a ticket")
    out = await c.say("what can you do?")
    assert out.form == "ticket_form" and out.requested_slot == "subject"
    assert re.search(r"(?i)ticket", out.text)  # the help answer
    assert re.search(r"(?i)subject", out.messages[-1].text)  # the pending question
    out = await c.say("Laptop does not boot")
    assert out.requested_slot == "description"


async def test_digression_to_another_skill_during_a_typed_slot(chat):
    c = chat("chatbot")
    await c.say("open a ticket about slow wifi")
    await c.say("Pages take a minute to load on floor 2.")
    out = await c.say("which services are up?")
    assert [e.type for e in out.intents] == ["intent.management.services_status"]
    assert out.requested_slot == "contact_email"
    assert re.search(r"(?i)e-?mail", out.text)


async def test_a_complete_question_about_another_ticket_is_answered_inside_a_form(chat):
    c = chat("support")
    await c.say("open a ticket about the projector")
    await c.say("No picture since this morning in room 4.")
    out = await c.say("what's the status of ticket #42?")
    assert [(e.type, e.payload) for e in out.intents] == [
        ("intent.management.ticket_get", {"ticket": 42})
    ]
    assert out.requested_slot == "contact_email" and re.search(r"(?i)e-?mail", out.text)


async def test_free_text_answer_is_not_mistaken_for_another_intent(chat):
    c = chat("support")
    await c.say("open a ticket")
    # looks like other intents, but is the subject the bot asked for
    out = await c.say("The status page of the services says everything is down")
    assert out.requested_slot == "description", out.text
    out = await c.say("How many tickets were opened this week is wrong on the dashboard")
    assert out.requested_slot == "contact_email", out.text


async def test_fallback_when_unsure(registry):
    nlu = FixedNLU([("ticket_open", 0.12), ("greet", 0.1)])
    engine = DialogueEngine(nlu, InMemoryConversationStore(), registry)
    turn = UserTurn(
        text="blorp", conversation=Conversation(channel="web", id="x"), actor=Actor(id="a")
    )
    out = await engine.handle(turn)
    assert out.text.startswith("Sorry, I didn't get that")
    assert "help" in out.text and not out.intents and out.form is None
    assert out.messages[0].buttons[0].payload == "/help"


async def test_clarification_when_two_intents_are_close(registry):
    entity = EntityMatch(entity="ticket_id", value="#42", text="#42", start=0, end=3, extractor="x")
    nlu = FixedNLU([("ticket_status", 0.46), ("ticket_close", 0.44)], [entity])
    store = InMemoryConversationStore()
    engine = DialogueEngine(nlu, store, registry)
    conv = Conversation(channel="web", id="clarify")
    out = await engine.handle(UserTurn(text="#42 done?", conversation=conv, actor=Actor(id="a")))
    assert out.text.startswith("I'm not sure I understood. Did you mean")
    assert "check a ticket" in out.text and "close a ticket" in out.text
    payloads = [b.payload for b in out.messages[0].buttons]
    assert payloads == ['/ticket_status{"ticket_id":"#42"}', '/ticket_close{"ticket_id":"#42"}']
    assert not out.intents
    # pressing a button bypasses the NLU (FixedNLU would say ticket_status again)
    out = await engine.handle(UserTurn(text=payloads[1], conversation=conv, actor=Actor(id="a")))
    assert [(e.type, e.payload) for e in out.intents] == [
        ("intent.management.ticket_close", {"ticket": 42})
    ]
    assert out.parse is not None and out.parse.engine == "payload"


async def test_two_stage_fallback_asks_between_the_close_candidates(registry):
    nlu = FixedNLU([("nlu_fallback", 0.4), ("ticket_status", 0.33), ("ticket_close", 0.3)])
    engine = DialogueEngine(nlu, InMemoryConversationStore(), registry)
    conv = Conversation(channel="web", id="two-stage")
    out = await engine.handle(UserTurn(text="my ticket?", conversation=conv, actor=Actor(id="a")))
    assert "Did you mean" in out.text
    assert [b.payload for b in out.messages[0].buttons] == ["/ticket_status", "/ticket_close"]
    far = FixedNLU([("nlu_fallback", 0.4), ("ticket_status", 0.33), ("ticket_close", 0.1)])
    engine = DialogueEngine(far, InMemoryConversationStore(), registry)
    out = await engine.handle(UserTurn(text="my ticket?", conversation=conv, actor=Actor(id="a")))
    assert out.text.startswith("Sorry, I didn't get that")


async def test_button_payload_with_entities_fills_a_form(chat):
    c = chat("chatbot")
    out = await c.say('/ticket_open{"priority": "urgent", "subject": "Payment page broken"}')
    assert out.requested_slot == "description"
    await c.say("Customers get a 500 error when paying.")
    out = await c.say("shop@example.com")
    assert _ticket(out).payload["priority"] == "urgent"
    assert _ticket(out).payload["subject"] == "Payment page broken"


async def test_unknown_button_intent_is_a_fallback(chat):
    out = await chat().say("/no_such_intent")
    assert out.text.startswith("Sorry") and not out.intents


async def test_out_of_scope_is_declined_with_what_the_bot_can_do(chat):
    out = await chat().say("can you order me a pizza with pineapple?")
    assert "Sorry, I can't help with that" in out.text
    assert "ticket" in out.text and not out.intents


async def test_help_lists_tickets_for_every_assistant(chat):
    for bot in ("chatbot", "support"):
        out = await chat(bot).say("what can you do?")
        assert re.search(r"(?i)ticket", out.text)


async def test_support_greeting_mentions_tickets_and_switch(chat):
    c = chat("chatbot")
    out = await c.say("talk to support")
    assert out.bot == "support" and "ticket" in out.text
    out = await c.say("hi")  # the switch is remembered for the conversation
    assert out.bot == "support" and "support" in out.text.lower()


async def test_support_bot_offers_a_switch_for_other_skills(chat):
    out = await chat("support").say("show me the campaigns")
    assert not out.intents
    assert out.messages[0].buttons[0].payload == '/bot_switch{"bot":"chatbot"}'


async def test_expert_bot_sends_every_question_to_expert_ask(chat):
    c = chat("expert:security")
    out = await c.say("hi")
    assert "security expert" in out.text
    for question in ["how do I rotate ssh keys?", "what's the weather?", "open a ticket"]:
        out = await c.say(question)
        (env,) = out.intents
        assert env.type == "intent.generative.expert_ask"
        assert env.payload["expert"] == "security" and env.payload["question"] == question


async def test_handoff_sets_the_flag_and_escalates_a_named_ticket(chat):
    out = await chat().say("talk to a person")
    assert out.handoff and "human" in out.text and not out.intents
    out = await chat().say("I want to talk to a human about ticket #12")
    assert out.handoff
    assert [(e.type, e.payload["ticket"]) for e in out.intents] == [
        ("intent.management.ticket_escalate", 12)
    ]


async def test_metrics_and_status_skills(chat):
    out = await chat().say("how many tickets were opened this week?")
    (env,) = out.intents
    assert env.type == "intent.analysis.metrics_query"
    assert env.payload == {"metric": "tickets_opened", "period": "this_week"}
    out = await chat().say("top intents today")
    assert out.intents[0].payload["metric"] == "top_intents"
    assert out.intents[0].payload["period"] == "today"
    out = await chat().say("which services are up?")
    assert out.intents[0].type == "intent.management.services_status"


async def test_ticket_id_is_asked_when_missing(chat):
    c = chat("support")
    out = await c.say("where is my ticket")
    assert out.requested_slot == "ticket_id" and "#42" in out.text
    out = await c.say("hmm I don't know")
    assert out.requested_slot == "ticket_id" and "ticket number" in out.text
    out = await c.say("it's 17")
    assert [(e.type, e.payload) for e in out.intents] == [
        ("intent.management.ticket_get", {"ticket": 17})
    ]


async def test_lead_form_with_consent_buttons(chat):
    c = chat()
    out = await c.say("I'm interested in a demo")
    assert out.requested_slot == "lead_name"
    await c.say("Jane Doe")
    await c.say("jane@acme.example.com")
    out = await c.say("Acme Corp")
    assert out.requested_slot == "lead_consent"
    assert [b.payload for b in out.messages[-1].buttons] == ["/affirm", "/deny"]
    out = await c.say("yes")
    (env,) = out.intents
    assert env.type == "intent.marketing.lead_capture"
    assert env.payload["name"] == "Jane Doe" and env.payload["email"] == "jane@acme.example.com"
    assert env.payload["company"] == "Acme Corp" and env.payload["consent"] is True


async def test_reply_templates(registry):
    reply = Reply(text="Ticket #7 opened.", service="management", action="ticket_create")
    assert registry.render_reply(reply) == "Ticket #7 opened."
    failed = Reply(text="Something went wrong.", status="error", reference="ab12cd34")
    assert registry.render_reply(failed) == "Something went wrong. (reference ab12cd34)"


async def test_nlu_outage_gives_a_polite_message(registry):
    from skills.nlu.errors import NLUEngineUnavailable

    class Down:
        async def parse(self, text):
            raise NLUEngineUnavailable("no model yet")

    engine = DialogueEngine(Down(), InMemoryConversationStore(), registry)
    turn = UserTurn(
        text="hi", conversation=Conversation(channel="web", id="d"), actor=Actor(id="a")
    )
    out = await engine.handle(turn)
    assert "can't understand messages right now" in out.text
    # buttons still work without the NLU
    out = await engine.handle(turn.model_copy(update={"text": "/help", "id": uuid.uuid4()}))
    assert "ticket" in out.text


async def test_a_long_free_text_answer_is_never_read_as_a_command(chat):
    c = chat("support")
    out = await c.say("I need to open a ticket")
    assert out.requested_slot == "subject", out.text
    out = await c.say("Billing page broken")
    assert out.requested_slot == "description", out.text
    out = await c.say("I tried to cancel it and to talk to a person but the page just reloads.")
    assert out.requested_slot == "contact_email", out.text
    out = await c.say("never mind")
    assert out.form is None and "cancel" in out.text.lower()
