"""Helpers shared by the spine tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply

ACTOR = Actor(id="u1", roles=("user",))


def reply_env(conv_id: str = "c-1", text: str = "x", channel: str = "web") -> Envelope:
    """A reply event in conversation ``conv_id``."""
    conv = Conversation(channel=channel, id=conv_id)  # type: ignore[arg-type]
    return Envelope.new("reply", Reply(text=text), conversation=conv, actor=ACTOR)


async def take(it: AsyncIterator[tuple[int, Envelope]], n: int, timeout: float = 30.0) -> list:
    """The next ``n`` items of an async iterator, failing if they do not come in time."""
    out: list[tuple[int, Envelope]] = []

    async def run() -> None:
        while len(out) < n:
            out.append(await anext(it))

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise AssertionError(f"got only {len(out)} of {n} items within {timeout}s") from None
    return out


async def nothing_more(it: AsyncIterator[tuple[int, Envelope]], wait: float = 1.0) -> None:
    """Assert the iterator yields nothing else within ``wait`` seconds."""
    try:
        extra = await asyncio.wait_for(anext(it), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected extra item: {extra}")
