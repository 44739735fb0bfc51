"""A ticket opened in a Slack thread: support's comment reaches the requester in that thread."""

from __future__ import annotations

import re
from pathlib import Path

from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply
from tests.bots.notices import act, management
from tests.claims import signed
from tests.slack.conftest import running_gateway
from tests.slack.fake_slack import FakeSlack


async def _answer(bus: Bus, intent: Envelope) -> str:
    conv = intent.conversation
    flt = subjects.events_filter(
        channel=conv.channel, conversation_id=conv.id, envelope_type="reply"
    )
    async for _, env in bus.tail(flt, 1):
        if env.correlation_id == intent.correlation_id:
            return env.payload_as(Reply).text
    raise AssertionError("no answer")


async def test_support_comment_is_posted_in_the_requesters_thread(
    bus: Bus, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with management(bus, tmp_path), running_gateway(bus, fake_slack):
        thread = Conversation(channel="slack", id="CHELP1", thread="1700000000.000100")
        requester = Actor(id="slack:UREQ", name="Rita", roles=("user",))
        opened = signed(
            Envelope.new(
                subjects.intent_type("management", "ticket_create"),
                {"subject": "VPN drops", "requester_email": "rita@example.com"},
                conversation=thread,
                actor=requester,
            )
        )
        await bus.publish(opened)
        number = int(re.findall(r"#(\d+)", await _answer(bus, opened))[0])
        await act(bus, "ticket_comment", ticket=number, body="Please restart the router.")
        await act(bus, "ticket_update", ticket=number, status="solved")
        posts = await fake_slack.wait_for(
            "chat.postMessage", channel="CHELP1", thread_ts="1700000000.000100", count=3
        )
        texts = [p.args["text"] for p in posts]
        assert f"Ticket #{number}" in texts[0]  # management's answer to the requester
        assert f"Update on ticket #{number} (VPN drops)" in texts[1]
        assert "Please restart the router." in texts[1]
        assert f"Ticket #{number} (VPN drops) is now solved." in texts[2]
