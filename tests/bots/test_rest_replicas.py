"""Two gateways on one bus: a REST conversation that moves between them gets every reply once
(its own call's, and late ones by whichever replica the next call or poll reaches)."""

from __future__ import annotations

import asyncio

from bots.web.rest import WORKING_TEXT
from events.bus import Bus

from .conftest import LiveServer, ScriptedDialogue, start_gateway
from .web_clients import guest_client


async def _pending_on_both(first: LiveServer, second: LiveServer, conversation: str) -> None:
    async with asyncio.timeout(10):
        while not all(
            live.app.state.gateway.rest._pending.get(conversation) for live in (first, second)
        ):
            await asyncio.sleep(0.05)


async def test_a_conversation_across_two_gateways_gets_each_reply_once(
    bus: Bus, echo_runner: object
) -> None:
    first = await start_gateway(bus, ScriptedDialogue(), rest_turn_timeout=0.3)
    second = await start_gateway(bus, ScriptedDialogue(), rest_turn_timeout=0.3)
    try:
        async with guest_client(first.url) as guest:
            client, conversation = guest.client, guest.sender

            async def say(live: LiveServer, text: str) -> list[str]:
                r = await client.post(f"{live.url}/webhooks/rest/webhook", json={"message": text})
                assert r.status_code == 200, r.text
                return [m["text"] for m in r.json()]

            async def poll(live: LiveServer) -> list[str]:
                r = await client.get(f"{live.url}/webhooks/rest/pending")
                assert r.status_code == 200, r.text
                return [m["text"] for m in r.json()]

            assert await say(first, "hello") == ["echo: hello"]
            # the second replica read that reply too, and knows its call handed it out
            assert await say(second, "hi") == ["echo: hi"]
            assert await poll(first) == [] and await poll(second) == []

            assert await say(first, "slow 1") == [WORKING_TEXT]
            await _pending_on_both(first, second, conversation)  # both kept the late answer
            assert await poll(second) == ["Done after 1 s"]
            assert await poll(first) == []
            assert await say(first, "again") == ["echo: again"]
            assert await say(second, "more") == ["echo: more"]
    finally:
        await first.stop()
        await second.stop()
