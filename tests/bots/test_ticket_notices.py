"""Requesters hear about their tickets in the conversation they opened them in: real gateway(s),
real management service, real nats-server. Support's public comments and status changes give
one notice each, in order; internal notes and the requester's own changes give none; several
gateways publish each notice once; a restarted gateway misses none and repeats none."""

from __future__ import annotations

import json
import re
from pathlib import Path

from events import subjects
from events.bus import Bus
from events.envelope import Conversation

from .conftest import LiveServer, start_gateway
from .notices import (
    TicketDialogue,
    act,
    guest_actor,
    management,
    notices,
    settle,
    wait_notices,
)
from .web_clients import guest_client, ws_session

COMMENT = (
    "Update on ticket #{n} (VPN drops): Andy Agent (support) wrote:\nPlease restart the router."
)
SOLVED = "Ticket #{n} (VPN drops) is now solved."


async def _open_by_rest(live: LiveServer) -> tuple[str, int]:
    """A guest opens 'VPN drops' over REST: its conversation id and the ticket number."""
    async with guest_client(live.url) as guest:
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": "ticket VPN drops"})
        assert r.status_code == 200, r.text
        texts = [m["text"] for m in r.json()]
    found = re.search(r"Ticket #(\d+)", " ".join(texts))
    assert found, texts
    return guest.sender, int(found.group(1))


async def test_rest_requester_gets_comment_and_status_notices_in_order(
    bus: Bus, tmp_path: Path
) -> None:
    async with management(bus, tmp_path):
        live = await start_gateway(bus, TicketDialogue())
        try:
            async with guest_client(live.url) as guest:
                r = await guest.client.post(
                    "/webhooks/rest/webhook", json={"message": "ticket VPN drops"}
                )
                assert r.status_code == 200, r.text
                number = int(re.findall(r"#(\d+)", r.text)[0])
                conversation = Conversation(channel="rest", id=guest.sender)
                requester = guest_actor(guest.sender)

                await act(bus, "ticket_comment", ticket=number, body="internal", public=False)
                await act(bus, "ticket_comment", requester, ticket=number, body="still down")
                await act(bus, "ticket_comment", ticket=number, body="Please restart the router.")
                await act(bus, "ticket_update", ticket=number, status="solved")

                texts = await wait_notices(bus, conversation, 2)
                assert texts == [COMMENT.format(n=number), SOLVED.format(n=number)]
                await settle()
                assert len(await notices(bus, conversation)) == 2

                # REST: the late replies are handed out by the next poll, in order, once
                r = await guest.client.get("/webhooks/rest/pending")
                assert r.status_code == 200, r.text
                assert [m["text"] for m in r.json()] == texts
                r = await guest.client.get("/webhooks/rest/pending")
                assert r.json() == []
        finally:
            await live.stop()


async def test_requesters_own_changes_give_no_notice(bus: Bus, tmp_path: Path) -> None:
    async with management(bus, tmp_path):
        live = await start_gateway(bus, TicketDialogue())
        try:
            sender, number = await _open_by_rest(live)
            conversation = Conversation(channel="rest", id=sender)
            requester = guest_actor(sender)
            await act(bus, "ticket_update", ticket=number, status="pending")  # notice 1
            # the requester answers (pending -> open, by them) and closes it: no notices
            await act(bus, "ticket_comment", requester, ticket=number, body="here you go")
            await act(bus, "ticket_close", requester, ticket=number)
            await act(bus, "ticket_reopen", ticket=number)  # notice 2
            texts = await wait_notices(bus, conversation, 2)
            assert texts == [
                f"Ticket #{number} (VPN drops) is now pending.",
                f"Ticket #{number} (VPN drops) is now open.",
            ]
            await settle()
            assert len(await notices(bus, conversation)) == 2
        finally:
            await live.stop()


async def test_widget_shows_notices_live_and_after_a_reload(bus: Bus, tmp_path: Path) -> None:
    async with management(bus, tmp_path):
        live = await start_gateway(bus, TicketDialogue())
        try:
            async with guest_client(live.url) as guest:
                async with ws_session(live.ws_url, guest.token) as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["type"] == "hello"
                    await ws.send(
                        json.dumps(
                            {"type": "message", "text": "ticket VPN drops", "client_id": "c1"}
                        )
                    )
                    number, last_seq = 0, 0
                    while not number:
                        frame = json.loads(await ws.recv())
                        if frame["type"] == "reply":
                            last_seq = frame["seq"]
                            if found := re.search(r"Ticket #(\d+)", frame["text"]):
                                number = int(found.group(1))
                    await act(
                        bus, "ticket_comment", ticket=number, body="Please restart the router."
                    )
                    while True:  # live
                        frame = json.loads(await ws.recv())
                        if frame["type"] == "reply":
                            break
                    assert frame["text"] == COMMENT.format(n=number)
                    assert frame["service"] == "management" and frame["seq"] > last_seq
                    shown = frame["seq"]
                # the page is closed; the ticket is solved meanwhile; the page comes back
                await act(bus, "ticket_update", ticket=number, status="solved")
                await wait_notices(bus, Conversation(channel="web", id=guest.sender), 2)
                async with ws_session(live.ws_url, guest.token, since=shown) as ws:
                    assert json.loads(await ws.recv())["type"] == "hello"
                    frame = json.loads(await ws.recv())
                    assert frame["type"] == "reply" and frame["text"] == SOLVED.format(n=number)
                # a reload from the start of the conversation shows both, in order
                async with ws_session(live.ws_url, guest.token, since=0) as ws:
                    assert json.loads(await ws.recv())["type"] == "hello"
                    texts: list[str] = []
                    while SOLVED.format(n=number) not in texts:
                        frame = json.loads(await ws.recv())
                        if frame["type"] == "reply":
                            texts.append(frame["text"])
                    assert texts[-2:] == [COMMENT.format(n=number), SOLVED.format(n=number)]
        finally:
            await live.stop()


async def test_two_gateways_publish_each_notice_once(bus: Bus, tmp_path: Path) -> None:
    async with management(bus, tmp_path):
        first = await start_gateway(bus, TicketDialogue())
        second = await start_gateway(bus, TicketDialogue())
        try:
            sender, number = await _open_by_rest(first)
            conversation = Conversation(channel="rest", id=sender)
            for i in range(3):
                await act(bus, "ticket_comment", ticket=number, body=f"note {i}")
            await act(bus, "ticket_update", ticket=number, status="solved")
            texts = await wait_notices(bus, conversation, 4)
            assert [t.rsplit("\n", 1)[-1] for t in texts[:3]] == ["note 0", "note 1", "note 2"]
            await settle()
            assert len(await notices(bus, conversation)) == 4
            published = [
                live.app.state.gateway.ticket_notices.published for live in (first, second)
            ]
            assert sum(published) == 4, published  # not merely dropped as duplicates by the bus
        finally:
            await first.stop()
            await second.stop()


async def test_a_restarted_gateway_misses_no_notice_and_repeats_none(
    bus: Bus, tmp_path: Path
) -> None:
    async with management(bus, tmp_path):
        live = await start_gateway(bus, TicketDialogue())
        try:
            sender, number = await _open_by_rest(live)
            conversation = Conversation(channel="rest", id=sender)
            await act(bus, "ticket_comment", ticket=number, body="Please restart the router.")
            await wait_notices(bus, conversation, 1)
        finally:
            await live.stop()
        # while no gateway runs
        await act(bus, "ticket_update", ticket=number, status="solved")
        await settle(0.5)
        assert len(await notices(bus, conversation)) == 1
        again = await start_gateway(bus, TicketDialogue())
        try:
            texts = await wait_notices(bus, conversation, 2)
            assert texts == [COMMENT.format(n=number), SOLVED.format(n=number)]
            await settle()
            assert again.app.state.gateway.ticket_notices.published == 1
            assert len(await notices(bus, conversation)) == 2
        finally:
            await again.stop()


async def test_the_follower_is_one_durable_consumer(bus: Bus, tmp_path: Path) -> None:
    live = await start_gateway(bus, TicketDialogue())
    try:
        info = await bus.js.consumer_info(subjects.EVENT_STREAM, subjects.TICKET_NOTICES_CONSUMER)
        assert info.config.max_ack_pending == 1  # one event at a time across replicas
        assert info.config.filter_subject == "fd.event.*.*.ticket.>"
    finally:
        await live.stop()
