"""The reply router: ordered delivery per channel, exactly once across a restart."""

from __future__ import annotations

import asyncio

import httpx

from bots.router import ReplyRouter
from bots.tracking import ObservedReply
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply

from .conftest import ScriptedDialogue, start_gateway
from .web_clients import guest_client


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.items: list[ObservedReply] = []
        self.fail_first = fail_first

    async def deliver(self, item: ObservedReply) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("slack said 500")
        self.items.append(item)


def reply(channel: str, conv: str, text: str) -> Envelope:
    return Envelope.new(
        "reply",
        Reply(text=text),
        conversation=Conversation(channel=channel, id=conv),  # type: ignore[arg-type]
        actor=Actor(id="svc"),
    )


async def wait_for(pred, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


async def test_delivers_in_order_per_channel_and_exactly_once_after_restart(bus: Bus) -> None:
    slack = Recorder()
    router = ReplyRouter(bus)
    router.register("slack", slack)
    await router.start()
    for i in range(3):
        await bus.publish(reply("slack", "C1.1700000000.1", f"live {i}"))
    await bus.publish(reply("web", "w-x", "not for slack"))
    await wait_for(lambda: len(slack.items) == 3)
    await router.stop()

    for i in range(3):  # published while the front door is down
        await bus.publish(reply("slack", "C1.1700000000.1", f"down {i}"))

    slack2 = Recorder()
    router2 = ReplyRouter(bus)
    router2.register("slack", slack2)
    await router2.start()
    await wait_for(lambda: len(slack2.items) == 3)
    await asyncio.sleep(0.3)
    await router2.stop()
    assert [i.reply.text for i in slack.items] == ["live 0", "live 1", "live 2"]
    assert [i.reply.text for i in slack2.items] == ["down 0", "down 1", "down 2"]
    assert slack2.items[0].envelope.conversation.id == "C1.1700000000.1"
    seqs = [i.seq for i in slack.items + slack2.items]
    assert seqs == sorted(seqs)


async def test_failed_delivery_is_retried_in_order(bus: Bus) -> None:
    slack = Recorder(fail_first=2)
    router = ReplyRouter(bus)
    router.register("slack", slack)
    await router.start()
    try:
        for i in range(3):
            await bus.publish(reply("slack", "C2", f"m{i}"))
        await wait_for(lambda: len(slack.items) == 3)
        assert [i.reply.text for i in slack.items] == ["m0", "m1", "m2"]
    finally:
        await router.stop()


async def test_rest_replies_published_while_down_reach_the_next_poll_once(
    bus: Bus, echo_runner: object
) -> None:
    live = await start_gateway(bus, ScriptedDialogue())
    async with guest_client(live.url) as guest:
        eve, token = guest.sender, guest.token
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": "hi"})
        assert r.json() == [{"recipient_id": eve, "text": "echo: hi"}]
    await live.stop()
    await bus.publish(reply("rest", eve, "answer published while down"))
    live = await start_gateway(bus, ScriptedDialogue())
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=live.url, headers=headers) as client:
            got: list[str] = []
            for _ in range(50):
                page = await client.get("/webhooks/rest/pending")
                assert page.status_code == 200, page.text
                got += [m["text"] for m in page.json()]
                if got:
                    break
                await asyncio.sleep(0.05)
            r = await client.post("/webhooks/rest/webhook", json={"message": "again"})
        assert got == ["answer published while down"]
        assert [m["text"] for m in r.json()] == ["echo: again"]
    finally:
        await live.stop()
