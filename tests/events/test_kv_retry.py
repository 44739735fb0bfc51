"""KV operations while a bucket has no leader (a NATS node was lost and the others elect a new
one): they wait and retry, like a publish, instead of failing the turn or handing a reply out
twice. Found by ``frontdoor bench chaos``: during a node loss the dialogue's state read failed
("Sorry, something went wrong"), a REST reply's claim failed open and a second gateway handed it
out again, and a Slack event's claim raised, so Slack's retry found it taken and it was lost."""

from __future__ import annotations

from typing import Any

import nats.errors
import nats.js.errors
import pytest

from bots.seen import SeenSet
from events.kv import VersionedKV, retry_transient


class Entry:
    def __init__(self, value: bytes, revision: int) -> None:
        self.value, self.revision = value, revision


class LeaderlessKV:
    """A bucket whose first ``failures`` operations time out; with ``lands``, a timed-out
    create was stored all the same (its answer was lost)."""

    def __init__(self, failures: int, *, lands: bool = False) -> None:
        self.failures, self.lands = failures, lands
        self.data: dict[str, bytes] = {}
        self.calls = 0

    def _fail(self) -> bool:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            return True
        return False

    async def create(self, key: str, value: bytes) -> int:
        if self._fail():
            if self.lands:
                self.data[key] = value
            raise nats.errors.TimeoutError
        if key in self.data:
            raise nats.js.errors.KeyWrongLastSequenceError(description="exists")
        self.data[key] = value
        return 1

    async def get(self, key: str) -> Any:
        if self._fail():
            raise nats.errors.NoRespondersError
        if key not in self.data:
            raise nats.js.errors.KeyNotFoundError
        return Entry(self.data[key], 1)


async def test_a_transient_failure_is_retried_and_others_are_not() -> None:
    store = LeaderlessKV(3)
    assert await VersionedKV(store).get("k") is None  # type: ignore[arg-type]
    assert store.calls == 4

    async def bad() -> None:
        raise ValueError("not transient")

    with pytest.raises(ValueError):
        await retry_transient(bad)


async def test_retrying_gives_up_after_its_time() -> None:
    store = LeaderlessKV(1000)
    with pytest.raises(nats.errors.NoRespondersError):
        await retry_transient(lambda: store.get("k"), seconds=0.2)


async def test_a_claim_whose_answer_was_lost_is_still_won_once() -> None:
    store = LeaderlessKV(2, lands=True)
    seen = SeenSet(store)  # type: ignore[arg-type]
    assert await seen.claim("evt", "Ev1") is True  # its first create landed: still its own
    assert await seen.claim("evt", "Ev1") is False  # Slack's retry, another replica: taken
    assert await seen.claim_as("turn-1", "rest", "r1") is True
    other = SeenSet(store)  # type: ignore[arg-type]
    assert await other.claim_as("turn-2", "rest", "r1") is False  # handed out once
