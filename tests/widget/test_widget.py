"""The embeddable widget in real headless Chromium against the real gateway (uvicorn), with real
NATS, the management service, the NLU and the dialogue engine."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from events.envelope import SYSTEM_ACTOR, Conversation, Envelope
from events.payloads import Reply
from tests.widget.conftest import ARTIFACTS, PortServer, Stack

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

#: Records whether the typing indicator was ever shown (it may flash for a few milliseconds).
TYPING_PROBE = """
window.__typingSeen = false;
document.addEventListener("DOMContentLoaded", function () {
  new MutationObserver(function (records) {
    records.forEach(function (r) {
      if (r.target.classList && r.target.classList.contains("fd-typing") && r.oldValue !== null) {
        window.__typingSeen = true;
      }
    });
  }).observe(document.body, {attributes: true, subtree: true, attributeFilter: ["hidden"],
                             attributeOldValue: true});
});
"""


async def _bot_texts(page: Any) -> list[str]:
    return await page.locator(".fd-log .fd-msg.fd-bot").all_inner_texts()


async def say(page: Any, text: str, pattern: str, timeout: float = 20.0) -> str:
    """Type ``text`` and press Enter; wait for a new bot message matching ``pattern``."""
    before = len(await _bot_texts(page))
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")
    return await wait_bot(page, before, pattern, timeout)


async def wait_bot(page: Any, before: int, pattern: str, timeout: float = 20.0) -> str:
    """Wait for a bot message after the first ``before`` ones that matches ``pattern``."""
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while True:
        new = (await _bot_texts(page))[before:]
        joined = "\n".join(new)
        if regex.search(joined):
            return joined
        if time.monotonic() > deadline:
            raise AssertionError(f"no bot message matching {pattern!r}; new messages: {new}")
        await asyncio.sleep(0.1)


async def _session(page: Any, base: str) -> dict[str, str]:
    raw = await page.evaluate(
        f"localStorage.getItem({json.dumps('frontdoor:' + base + ':session')})"
    )
    return json.loads(raw)


async def test_chat_ticket_form_reload_and_xss(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    await page.add_init_script(TYPING_PROBE)
    await page.goto(stack.live.url + "/")

    # Opened, labelled, focused.
    bubble = page.locator(".fd-bubble")
    await expect(bubble).to_have_attribute("aria-expanded", "true")
    log = page.get_by_role("log", name="Conversation")
    await expect(log).to_have_attribute("aria-live", "polite")
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_focused()
    bots = page.get_by_label("Bot")
    await expect(bots.locator("option")).to_have_count(3)  # from GET /api/bots
    assert await bots.locator("option").all_inner_texts() == ["chatbot", "support", "ops"]

    await say(page, "what can you do?", r"(?i)ticket")
    assert await page.evaluate("window.__typingSeen") is True

    # The support bot's ticket form, finished with a priority button.
    await bots.select_option("support")
    await say(page, "I need to open a ticket", r"(?i)subject|title|summar")
    await say(page, "VPN drops every ten minutes", r"(?i)descri|detail|more")
    await say(
        page,
        "Since this morning the VPN client disconnects and I lose my SSH sessions.",
        r"(?i)e-?mail|contact|reach",
    )
    await say(page, "ana@example.com", r"(?i)priority")
    quick = page.get_by_role("group", name="Quick replies").last
    titles = [t.lower() for t in await quick.get_by_role("button").all_inner_texts()]
    assert titles == ["low", "normal", "high", "urgent"]
    before = len(await _bot_texts(page))
    await quick.get_by_role("button", name=re.compile("high", re.I)).click()
    created = await wait_bot(page, before, r"#\d+")
    number = re.search(r"#(\d+)", created).group(1)  # type: ignore[union-attr]
    await expect(page.locator(".fd-msg.fd-user").last).to_have_text(re.compile("high", re.I))
    await expect(quick.get_by_role("button").first).to_be_disabled()  # answered once

    # Hostile text from the user and from a service is shown as text, never executed.
    attacks = ['<img src=x onerror="window.__xss=1">', "<script>window.__xss=2</script>"]
    for attack in attacks:
        await box.fill(attack)
        await box.press("Enter")
        await expect(page.locator(".fd-msg.fd-user").last).to_contain_text(attack)
    session = await _session(page, stack.live.url)
    hostile = Envelope.new(
        "reply",
        Reply(
            text='<img src=x onerror="window.__xss=3"> **bold** [bad](javascript:window.__xss=4) '
            "and [good](https://example.com/x) `<b>code</b>`",
            service="management",
        ),
        conversation=Conversation(channel="web", id=session["sender"], bot="support"),
        actor=SYSTEM_ACTOR,
    )
    await stack.bus.publish(hostile)
    row = page.locator(f'.fd-msg[data-id="{hostile.id}"]')
    await expect(row).to_be_visible(timeout=15000)
    await expect(row.locator("strong")).to_have_text("bold")
    await expect(row.locator("code")).to_have_text("<b>code</b>")
    links = row.locator("a")
    await expect(links).to_have_count(1)
    await expect(links).to_have_attribute("href", "https://example.com/x")
    await expect(links).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert "[bad](javascript:window.__xss=4)" in await row.inner_text()
    assert await log.locator("img, script, b").count() == 0
    # A support agent's answer (hand-off) is shown as coming from a person.
    agent = Envelope.new(
        "reply",
        Reply(text="Hi, I'm Ana from support.", service="handoff", action="agent_message"),
        conversation=Conversation(channel="web", id=session["sender"], bot="support"),
        actor=SYSTEM_ACTOR,
    )
    await stack.bus.publish(agent)
    agent_row = page.locator(f'.fd-msg.fd-agent[data-id="{agent.id}"]')
    await expect(agent_row.locator(".fd-author")).to_have_text("Support agent", timeout=15000)
    await page.screenshot(path=str(ARTIFACTS / "widget-desktop.png"))

    # Reload: same session, history restored, and the conversation continues on the server.
    await page.reload()
    await expect(page.locator(".fd-log")).to_contain_text(f"#{number}")
    await expect(page.locator(".fd-log")).to_contain_text(attacks[1])
    assert (await _session(page, stack.live.url))["sender"] == session["sender"]
    await expect(page.get_by_label("Bot")).to_have_value("support")
    await say(page, f"what's the status of ticket #{number}?", r"(?i)open|new")
    assert await page.evaluate("window.__xss") is None
    assert page_errors == []
    await context.close()


async def test_keyboard_and_phone_layout(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    await page.goto(stack.live.url + "/")
    panel = page.get_by_role("dialog", name="Frontdoor")
    await expect(panel).to_be_visible()
    box = await panel.bounding_box()
    assert box is not None and box["width"] == 390 and box["height"] == 844  # full screen
    await say(page, "hi", r"\w")
    await page.screenshot(path=str(ARTIFACTS / "widget-phone.png"))

    # Escape closes and gives the focus back to the bubble; Enter on the bubble reopens.
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    bubble = page.get_by_role("button", name="Open chat")
    await expect(bubble).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(panel).to_be_visible()
    await expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    await context.close()


async def test_unreachable_server_then_reconnect_and_resume(stack: Stack, browser: Any) -> None:
    from playwright.async_api import expect

    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(stack.live.url + "/")
    await say(page, "hello", r"\w")
    session = await _session(page, stack.live.url)
    port = stack.live.port

    await stack.live.stop()
    alert = page.locator(".fd-banner")
    await expect(alert).to_be_visible(timeout=15000)
    await expect(alert).to_have_attribute("role", "alert")
    await expect(alert).to_contain_text(re.compile(r"Connection lost|Cannot reach"))
    await expect(alert).to_contain_text("Reconnecting")

    # A reply published while the front door is down is delivered after the reconnect.
    late = Envelope.new(
        "reply",
        Reply(text="Your report is ready (delivered after the reconnect)."),
        conversation=Conversation(channel="web", id=session["sender"], bot="chatbot"),
        actor=SYSTEM_ACTOR,
    )
    await stack.bus.publish(late)
    before = len(await _bot_texts(page))
    # A message typed while offline waits ("sending…") and is sent once the server is back.
    box = page.get_by_role("textbox", name="Message")
    await box.fill("what can you do?")
    await box.press("Enter")
    offline = page.locator(".fd-msg.fd-user").last
    await expect(offline).to_contain_text("sending")
    revived = PortServer(stack.new_app(), port)
    await revived.start()
    try:
        await page.get_by_role("button", name="Retry now").click()
        await expect(alert).to_be_hidden(timeout=20000)
        await wait_bot(page, before, r"delivered after the reconnect")
        await wait_bot(page, before, r"(?i)ticket")  # the answer to the offline message
        await expect(offline.locator(".fd-sending")).to_have_count(0)
        texts = await _bot_texts(page)
        assert sum("delivered after the reconnect" in t for t in texts) == 1  # exactly once
        await say(page, "thanks", r"\w")
    finally:
        await context.close()
        await revived.stop()


RENDER = """(text) => {
  const div = document.createElement("div");
  window.FrontdoorWidget.renderText(text, div);
  return div.innerHTML;
}"""


MARKDOWN_CASES = [
    ("**bold** and *it* and _it2_", "<strong>bold</strong> and <em>it</em> and <em>it2</em>"),
    ("snake_case_name stays", "snake_case_name stays"),
    ("2 * 3 * 4", "2 * 3 * 4"),
    ("a `<i>x</i>` b", 'a <code class="fd-code">&lt;i&gt;x&lt;/i&gt;</code> b'),
    (
        "see https://x.example/a_b_c.",
        'see <a class="fd-link" href="https://x.example/a_b_c" target="_blank" '
        'rel="noopener noreferrer nofollow">https://x.example/a_b_c</a>.',
    ),
    (
        "[**docs**](https://d.example)",
        '<a class="fd-link" href="https://d.example/" target="_blank" '
        'rel="noopener noreferrer nofollow">**docs**</a>',
    ),
    (
        "[x](javascript:alert(1)) [y](data:text/html,hi)",
        "[x](javascript:alert(1)) [y](data:text/html,hi)",
    ),
    ("line1\nline2 <b>", "line1<br>line2 &lt;b&gt;"),
    ('"><svg onload=alert(1)>', '"&gt;&lt;svg onload=alert(1)&gt;'),
]


async def test_markdown_whitelist(stack: Stack, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(stack.live.url + "/")
    await page.wait_for_function("window.FrontdoorWidget !== undefined")
    rendered = [(text, await page.evaluate(RENDER, text)) for text, _ in MARKDOWN_CASES]
    assert rendered == [(text, html) for text, html in MARKDOWN_CASES]
    await page.close()
