"""Subject encoding of conversation ids that would break a subject (``.``, ``*``, ``>``, ...)."""

from __future__ import annotations

import pytest

from events import subjects
from events.bus import Bus, subject_for
from tests.events.helpers import reply_env

NASTY_IDS = [
    "1700000000.123456",
    "a.b.c",
    "*",
    ">",
    "fd.event.>",
    "with space",
    "tab\tand\nnewline",
    "ünïcødé ✓ 会话",
    "~7E already-looks-encoded",
    "%2E",
    "emoji 🎉",
    "-_-",
]


@pytest.mark.parametrize("raw", NASTY_IDS)
def test_encode_token_round_trip_and_safe(raw: str) -> None:
    token = subjects.encode_token(raw)
    assert subjects.decode_token(token) == raw
    assert all(c.isascii() and (c.isalnum() or c in "_-~") for c in token), token
    assert not any(c in token for c in ". *>\t\n")


def test_distinct_ids_never_collide() -> None:
    tokens = {subjects.encode_token(raw) for raw in NASTY_IDS}
    assert len(tokens) == len(NASTY_IDS)
    assert subjects.encode_token("a.b") != subjects.encode_token("a~2Eb")


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError):
        subjects.encode_token("")


def test_event_subject_has_exactly_one_conversation_token() -> None:
    env = reply_env("x.y.z >")
    subject = subject_for(env)
    assert subject.split(".")[:4] == ["fd", "event", "web", subjects.encode_token("x.y.z >")]
    assert subject.endswith(".reply")


async def test_nasty_ids_are_found_by_their_filter(bus: Bus) -> None:
    published = {raw: reply_env(raw, text=raw) for raw in NASTY_IDS}
    for env in published.values():
        await bus.publish(env)
    for raw, env in published.items():
        found = [
            e
            async for _, e in bus.tail(
                subjects.events_filter(conversation_id=raw), from_seq=1, stop_at_end=True
            )
            if e.conversation.id == raw
        ]
        # tail with stop_at_end stops at the stream's last sequence; filter to this conv only
        assert [e.id for e in found] == [env.id], raw
        exact = [
            e async for _, e in _tail_filtered(bus, subjects.events_filter(conversation_id=raw))
        ]
        assert [e.id for e in exact] == [env.id], f"filter for {raw!r} selected {len(exact)}"


async def _tail_filtered(bus: Bus, filter_subject: str):
    """Everything the filter selects (stopping at the last sequence of the stream)."""
    async for seq, env in bus.tail(filter_subject, from_seq=1, stop_at_end=True):
        yield seq, env
