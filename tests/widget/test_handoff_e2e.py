"""End to end: a widget user opens a ticket, asks for a human, talks with an agent in a Slack
support thread, and is handed back to the bot. Real browser, NATS, dialogue, management service,
gateway and Bolt; only Slack's servers are a local fake."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.bus import Bus
from tests.slack.conftest import SUPPORT, RulesDialogue, SlackGateway, slack_settings
from tests.slack.fake_slack import FakeSlack
from tests.widget.conftest import ARTIFACTS, running_stack
from tests.widget.test_widget import _bot_texts, say, wait_bot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def test_widget_user_and_slack_agent(
    bus: Bus,
    nlu: Any,
    browser: Any,
    fake_slack: FakeSlack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.async_api import expect

    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(tmp_path))
    async with running_stack(bus, nlu, slack_settings(fake_slack)) as stack:
        page = await (await browser.new_context()).new_page()
        await page.goto(stack.live.url + "/")
        await page.get_by_label("Bot").select_option("support")
        await say(page, "open a ticket please", r"(?i)subject|title|summar")
        await say(page, "Printer on floor 3 is jammed", r"(?i)descri|detail|more")
        await say(page, "It shows error E-203 and nothing prints.", r"(?i)e-?mail|contact")
        await say(page, "bob@example.org", r"(?i)priority")
        created = await say(page, "normal", r"#\d+")
        number = re.search(r"#(\d+)", created).group(1)  # type: ignore[union-attr]

        # Asking for a human mirrors the conversation, with its ticket, to the support channel.
        await say(page, "I want to talk to a human", r"(?i)human|person|agent")
        [root] = await fake_slack.wait_for(channel=SUPPORT)
        summary = json.dumps(root.args["blocks"])
        assert f"#{number}" in summary and "Printer on floor 3 is jammed" in summary
        await wait_bot(page, 0, r"a person will answer here")

        # The user writes: it reaches the thread, the bot stays silent.
        bot_count = len(await _bot_texts(page))
        box = page.get_by_role("textbox", name="Message")
        await box.fill("It is still jammed after a restart.")
        await box.press("Enter")
        thread = root.response["ts"]
        [mirrored] = await fake_slack.wait_for(channel=SUPPORT, thread_ts=thread)
        assert mirrored.args["text"].endswith("It is still jammed after a restart.")

        # The agent answers in the thread (a signed Slack event): the widget shows it.
        async with httpx.AsyncClient() as http:
            gw = SlackGateway(
                stack.live, stack.live.app.state.slack, RulesDialogue(), fake_slack, http
            )
            agent = {
                "type": "message",
                "user": "UAGENT9",
                "text": "I'm sending a technician, *ten minutes*.",
                "ts": "1800000500.000001",
                "thread_ts": thread,
                "channel": SUPPORT,
                "channel_type": "channel",
            }
            assert (await gw.send_event(agent)).status_code == 200
            row = page.locator(".fd-msg.fd-agent").last
            await expect(row).to_contain_text("I'm sending a technician", timeout=15000)
            await expect(row.locator("strong")).to_have_text("ten minutes")
            await expect(row.locator(".fd-author")).to_have_text("Support agent")
            assert len(await _bot_texts(page)) == bot_count  # the bot said nothing meanwhile
            await page.screenshot(path=str(ARTIFACTS / "widget-handoff.png"))

            await gw.send_event(dict(agent, text="!handback", ts="1800000501.000001"))
            await wait_bot(page, bot_count, r"You're back with the bot")
        await say(page, f"what's the status of ticket #{number}?", r"(?i)open|new")
