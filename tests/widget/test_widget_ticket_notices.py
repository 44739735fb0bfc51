"""Ticket notices in the widget (real Chromium, gateway, management, NATS): support's comment
shows up live; a status change made while the page was closed shows up when it comes back,
after the history it kept, each notice once."""

from __future__ import annotations

import re
from typing import Any

import pytest

from events import subjects
from events.envelope import Actor, Conversation, Envelope
from tests.bots.notices import act, wait_notices
from tests.claims import signed
from tests.widget.conftest import Stack
from tests.widget.test_widget import _bot_texts, _session, wait_bot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


async def test_notices_show_live_and_after_the_page_comes_back(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(stack.live.url + "/")
    await expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    session = await _session(page, stack.live.url)
    conversation = Conversation(channel="web", id=session["sender"], bot="support")
    # the visitor opens a ticket in this conversation (what the ticket form ends with)
    opened = signed(
        Envelope.new(
            subjects.intent_type("management", "ticket_create"),
            {"subject": "VPN drops", "requester_email": "ana@example.com"},
            conversation=conversation,
            actor=Actor(id=f"guest:{session['sender']}", roles=("guest",)),
        )
    )
    await stack.bus.publish(opened)
    created = await wait_bot(page, 0, r"Ticket #\d+")
    number = int(re.findall(r"#(\d+)", created)[0])

    before = len(await _bot_texts(page))
    await act(stack.bus, "ticket_comment", ticket=number, body="Please restart the router.")
    live = await wait_bot(page, before, r"Update on ticket")
    assert f"Update on ticket #{number} (VPN drops)" in live
    assert "Please restart the router." in live

    await page.close()  # the visitor leaves; support solves the ticket meanwhile
    await act(stack.bus, "ticket_update", ticket=number, status="solved")
    await wait_notices(stack.bus, conversation, 2)

    page = await context.new_page()
    await page.goto(stack.live.url + "/")
    await wait_bot(page, 0, r"is now solved")
    texts = await _bot_texts(page)
    comments = [t for t in texts if "Update on ticket" in t]
    solved = [t for t in texts if f"Ticket #{number} (VPN drops) is now solved." in t]
    assert len(comments) == 1 and len(solved) == 1, texts
    assert texts.index(comments[0]) < texts.index(solved[0])
    await context.close()
