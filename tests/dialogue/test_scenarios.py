"""The shipped conversation scenarios, run at the dialogue level (fake service replies), and
paraphrases of their lines."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from events.envelope import Envelope
from events.payloads import Reply
from skills.dialogue import SkillRegistry

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_FILE = ROOT / "tests" / "scenarios" / "conversations.yml"


def _scenarios() -> list[dict[str, Any]]:
    if not SCENARIO_FILE.exists():
        return []
    return yaml.safe_load(SCENARIO_FILE.read_text())["scenarios"]


class FakeServices:
    """Answers intents like the backend services would (only what the scenarios need)."""

    def __init__(self) -> None:
        self.tickets: dict[int, dict[str, Any]] = {}

    def answer(self, env: Envelope) -> Reply:
        service, action = env.type.split(".")[1:]
        p = env.payload
        if action == "ticket_create":
            number = 41 + len(self.tickets) + 1
            self.tickets[number] = {**p, "status": "new"}
            text = f"Ticket #{number} opened: {p['subject']} (priority {p['priority']})."
        elif action == "ticket_get":
            found = self.tickets.get(p["ticket"])
            text = f"Ticket #{p['ticket']} is {found['status']}." if found else "No such ticket."
        elif action == "services_status":
            text = "management: up, marketing: up, analysis: up, generative: up"
        elif action == "metrics_query":
            text = f"{len(self.tickets) + 3} tickets were opened ({p['metric']}, {p['period']})."
        else:
            text = f"{action} done."
        return Reply(text=text, service=service, action=action)


SCENARIOS = _scenarios()


@pytest.mark.skipif(not SCENARIOS, reason="conversations.yml not found")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
async def test_shipped_scenario(scenario, chat, registry: SkillRegistry):
    services = FakeServices()
    c = chat(scenario.get("bot", "chatbot"))
    saved: dict[str, str] = {}
    for turn in scenario["turns"]:
        text = turn["user"].format(**saved)
        out = await c.say(text)
        said = [m.text for m in out.messages]
        said += [registry.render_reply(services.answer(env)) for env in out.intents]
        joined = "\n".join(said)
        assert re.search(turn["expect"], joined), (text, joined)
        for name, pattern in (turn.get("save") or {}).items():
            saved[name] = re.search(pattern, joined).group(1)


# Paraphrases of the scenario lines (not in the training data) -> what must happen.
PARAPHRASES = {
    "ticket_open": [
        "could you create a ticket for me",
        "I'd like to log a support ticket",
        "please raise a new ticket",
        "my laptop is broken, can you file a ticket",
    ],
    "ticket_status": [
        "any update on ticket #42?",
        "what is the status of #1234",
        "how's ticket #7 doing",
    ],
    "cancel": ["nevermind", "forget about it please", "cancel it", "stop that"],
    "help": ["what are you able to help with?", "what can you help me with", "help please"],
    "services_status": [
        "are the services up?",
        "is anything down right now?",
        "which services are running?",
    ],
    "metrics_query": [
        "how many tickets did we open this week?",
        "how many new tickets came in today?",
        "what were the top intents this week",
    ],
    "out_of_scope": [
        "please order me a pizza",
        "what's the weather tomorrow?",
        "tell me a funny joke",
    ],
    "greet": ["hello there", "good morning!", "hey hi"],
    "bot_switch": ["switch me to support", "I want to talk to support"],
}


@pytest.mark.parametrize(
    ("intent", "text"), [(i, t) for i, texts in PARAPHRASES.items() for t in texts]
)
async def test_paraphrases_are_understood(intent, text, nlu):
    parsed = await nlu.parse(text)
    assert parsed.intent.name == intent, (text, parsed.intent, parsed.intent_ranking[:3])


async def test_paraphrased_form_flow(chat):
    c = chat("support")
    out = await c.say("could you create a ticket for me")
    assert out.requested_slot == "subject"
    out = await c.say("what are you able to help with?")
    assert out.requested_slot == "subject" and re.search(r"(?i)subject", out.messages[-1].text)
    out = await c.say("forget about it please")
    assert out.form is None and "cancelled" in out.text
