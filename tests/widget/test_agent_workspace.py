"""End to end in a real browser: a customer in the widget, an agent in the workspace (/agent).
Two Chromium contexts against a real nats-server, management service, NLU + dialogue and
gateway: a ticket, a hand-off, claim, replies both ways (ordered, none lost), typing, a private
note, a public comment and an internal note on the ticket, close, the customer's rating; and the
refusals (no agent role, wrong password). Screenshots go to docs/images/."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events import subjects
from events.bus import Bus
from tests.agent.conftest import PASSWORD, AgentStack, agent_stack
from tests.widget.test_widget import _bot_texts, say, wait_bot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture
async def stack(
    bus: Bus, nlu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AgentStack]:
    from skills.dialogue import DialogueEngine, KVConversationStore, SkillRegistry

    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(tmp_path))
    dialogue = DialogueEngine(nlu, await KVConversationStore.open(bus), SkillRegistry.load())
    async with agent_stack(bus, dialogue, tmp_path, agent_signin_failure_limit=3) as running:
        yield running


async def agent_texts(page: Any) -> list[str]:
    return await page.locator(".fd-log .fd-msg.fd-agent .fd-text").all_inner_texts()


async def sign_in(page: Any, user: str, password: str) -> None:
    await page.get_by_label("User name or email").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def events(bus: Bus, envelope_type: str) -> list[Any]:
    flt = subjects.events_filter(envelope_type=envelope_type)
    return [env async for _, env in bus.tail(flt, 1, stop_at_end=True)]


async def test_customer_and_agent(stack: AgentStack, browser: Any) -> None:
    from playwright.async_api import expect

    IMAGES.mkdir(parents=True, exist_ok=True)
    url = stack.live.url
    customer = await (await browser.new_context()).new_page()
    await customer.goto(url + "/")
    await customer.get_by_label("Bot").select_option("support")
    await say(customer, "open a ticket please", r"(?i)subject|title|summar")
    await say(customer, "Printer on floor 3 is jammed", r"(?i)descri|detail|more")
    await say(customer, "It shows error E-203 and nothing prints.", r"(?i)e-?mail|contact")
    await say(customer, "bob@example.org", r"(?i)priority")
    created = await say(customer, "normal", r"#\d+")
    number = int(re.search(r"#(\d+)", created).group(1))  # type: ignore[union-attr]
    await say(customer, "I want to talk to a human", r"a person will answer here")
    assert not any("no human agent" in t for t in await _bot_texts(customer))

    # Refusals first: no agent role, then a wrong password.
    agent = await (await browser.new_context()).new_page()
    await agent.goto(url + "/agent")
    await sign_in(agent, "uma", PASSWORD)
    await expect(agent.locator("#sign-in-error")).to_contain_text("neither the agent nor the admin")
    await sign_in(agent, "alice", "not the password")
    await expect(agent.locator("#sign-in-error")).to_have_text("Wrong user name or password.")
    await agent.screenshot(path=str(IMAGES / "agent-sign-in.png"))
    await sign_in(agent, "alice", PASSWORD)
    await expect(agent.locator("#who-name")).to_contain_text("Alice Agent")

    # The inbox shows the waiting conversation, live; open it.
    item = agent.locator("#conversations button").filter(has_text="I want to talk to a human")
    await expect(item).to_have_count(1, timeout=15000)
    await item.click()
    transcript = agent.locator("#transcript")
    await expect(transcript).to_contain_text("Printer on floor 3 is jammed")
    await expect(transcript).to_contain_text(f"ticket #{number} created")
    await agent.get_by_role("button", name="Claim").click()
    await expect(agent.locator("#conv-meta")).to_contain_text("claimed by Alice Agent")

    # Typing reaches the widget; then replies both ways, in order.
    reply_box = agent.get_by_label("Reply to the user")
    await reply_box.fill("Hello")
    await expect(customer.locator(".fd-typing")).to_be_visible(timeout=10000)
    await reply_box.fill("")
    box = customer.get_by_role("textbox", name="Message")
    for i in range(1, 4):
        await reply_box.fill(f"Agent answer {i}")
        await reply_box.press("Enter")
        await expect(customer.locator(".fd-msg.fd-agent").last).to_contain_text(f"Agent answer {i}")
        await box.fill(f"Customer message {i}")
        await box.press("Enter")
        await expect(transcript.locator(".entry.user").last).to_contain_text(
            f"Customer message {i}"
        )
    assert await agent_texts(customer) == [f"Agent answer {i}" for i in range(1, 4)]
    rows = await transcript.locator(".entry.user, .entry.agent").all_inner_texts()
    said = [re.search(r"(Agent answer \d|Customer message \d)", r) for r in rows]
    order = [m.group(1) for m in said if m]
    assert order == [x for i in range(1, 4) for x in (f"Agent answer {i}", f"Customer message {i}")]
    await expect(customer.locator(".fd-msg.fd-agent .fd-author").last).to_have_text("Support agent")

    # A private note stays with the agents.
    await agent.get_by_label("Private note (agents only)").fill("Customer is a VIP")
    await agent.get_by_role("button", name="Add note").click()
    await expect(transcript.locator(".entry.note")).to_contain_text("Customer is a VIP")
    await agent.screenshot(path=str(IMAGES / "agent-conversation.png"), full_page=True)
    await customer.screenshot(path=str(IMAGES / "agent-widget.png"))

    # The ticket view: a public comment and an internal note.
    await agent.locator("#tickets button").filter(has_text=f"#{number}").click()
    await expect(agent.locator("#ticket-title")).to_contain_text(f"Ticket #{number}")
    await agent.get_by_label("Comment", exact=True).fill("A technician is on the way.")
    await agent.get_by_role("button", name="Add comment").click()
    await expect(agent.locator("#ticket-comments")).to_contain_text("A technician is on the way.")
    await agent.get_by_label("Comment", exact=True).fill("Toner supplier is late again")
    await agent.get_by_label("Internal note (the requester does not see it)").check()
    await agent.get_by_role("button", name="Add comment").click()
    await expect(agent.locator("#ticket-comments .entry.note")).to_contain_text("Toner supplier")
    await expect(agent.locator("#ticket-history")).to_contain_text("commented")
    await agent.screenshot(path=str(IMAGES / "agent-ticket.png"), full_page=True)
    commented = await events(stack.bus, "ticket.commented")
    assert [(e.payload["public"], e.payload["ticket"]) for e in commented] == [
        (True, number),
        (False, number),
    ]

    # Close, solving the ticket: the customer is asked for a rating and gives 5.
    await agent.locator("#conversations button").first.click()
    await agent.get_by_label("Solve ticket on close").select_option(str(number))
    before = len(await _bot_texts(customer))
    await agent.get_by_role("button", name="Close").click()
    await wait_bot(customer, before, r"How would you rate")
    await expect(agent.locator("#conversations button")).to_have_count(0)
    before = len(await _bot_texts(customer))
    await customer.locator(".fd-log").get_by_role("button", name="5", exact=True).click()
    await wait_bot(customer, before, rf"Thanks for rating ticket #{number} 5/5")
    [csat] = await events(stack.bus, "ticket.csat")
    assert csat.payload["score"] == 5
    [rated] = await events(stack.bus, "conversation.rated")
    assert rated.payload["score"] == 5 and rated.payload["ticket"] == number

    # Nothing agents-only ever reached the customer.
    await asyncio.sleep(1.0)
    shown = "\n".join(await customer.locator(".fd-log").all_inner_texts())
    assert "VIP" not in shown and "Toner supplier" not in shown
    for env in await events(stack.bus, "reply"):
        assert "Toner supplier" not in str(env.payload.get("text"))

    # Signing out closes the workspace.
    await agent.get_by_role("button", name="Sign out").click()
    await expect(agent.locator("#sign-in-error")).to_have_text("You signed out.")
    status = await agent.evaluate("fetch('/agent/api/inbox').then(r => r.status)")
    assert status == 401
