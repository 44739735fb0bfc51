"""Per-conversation dialogue state and where it is kept.

The state lives in the NATS KV bucket ``CONVERSATIONS_BUCKET`` (``KVConversationStore``), so any
front-door replica can continue any conversation; every write names the revision it read, and a
concurrent change makes it fail with ``StateConflict`` (the engine then re-runs the turn on the
fresh state). ``InMemoryConversationStore`` has the same semantics for unit tests of pure logic.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from events.bus import Bus
from events.envelope import Conversation
from events.errors import FrontdoorError
from events.kv import RevisionConflict, VersionedKV
from events.subjects import CONVERSATIONS_BUCKET


class StateConflict(FrontdoorError):
    """The conversation's state changed since it was read (another replica wrote it)."""


#: How many recent turn ids a conversation remembers (a retry of an older turn is a duplicate).
RECENT_TURNS = 20


class RecordedOutcome(BaseModel):
    """The outcome of a conversation's last turn, kept with the state it produced (one write):
    a retried turn whose outcome exists republishes it instead of running the dialogue again."""

    turn: str
    messages: list[dict[str, Any]] = Field(default_factory=list)
    intents: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    handoff: bool = False
    bot: str = "chatbot"


class ConversationState(BaseModel):
    """What the dialogue remembers about one conversation."""

    bot: str | None = Field(default=None, description="persona chosen by a bot switch")
    form: str | None = None
    form_skill: str | None = None
    requested_slot: str | None = None
    slots: dict[str, Any] = Field(default_factory=dict)
    last_intents: list[str] = Field(default_factory=list)
    handoff: bool = False
    turns: int = 0
    updated_at: datetime | None = None
    #: the ids of the last ``RECENT_TURNS`` turns, oldest first
    recent_turns: list[str] = Field(default_factory=list)
    last_outcome: RecordedOutcome | None = None

    def clear_form(self, keep: list[str] | None = None) -> None:
        """Leave the active form, forgetting its slots except ``keep``."""
        if self.form is not None:
            self.slots = {k: v for k, v in self.slots.items() if k in (keep or [])}
        self.form = self.form_skill = self.requested_slot = None


@dataclass(frozen=True)
class StoredState:
    """A state as read from a store, with the revision to name when writing it back."""

    state: ConversationState
    revision: int | None  # None: the conversation has no stored state yet


def conversation_key(conversation: Conversation) -> str:
    """The KV key of a conversation: channel, id and thread (ids may hold any character)."""

    def enc(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    key = f"{conversation.channel}.{enc(conversation.id)}"
    if conversation.thread:
        key += f".{enc(conversation.thread)}"
    return key


class ConversationStore(Protocol):
    """Load and save conversation states with optimistic concurrency."""

    async def load(self, key: str) -> StoredState:
        """The state of ``key`` (a fresh one, revision ``None``, when there is none).

        The returned state is a new object the caller may change (it is not shared)."""
        ...

    async def save(self, key: str, state: ConversationState, revision: int | None) -> int:
        """Write ``state`` if ``key`` is still at ``revision``; else raise ``StateConflict``."""
        ...

    async def delete(self, key: str) -> None:
        """Forget a conversation."""
        ...


class KVConversationStore:
    """Conversation states in a NATS KV bucket (shared by every front-door replica).

    The states this store wrote are remembered (bounded LRU, ``cache_size``) with their
    revision: ``load_for_update`` returns them without a round trip to NATS. A remembered state
    may be stale when another replica wrote the key since; the write that follows names the
    remembered revision, so it then fails with ``StateConflict``, the entry is dropped and the
    caller's retry reads the bucket. ``load`` always reads the bucket.
    """

    def __init__(self, kv: VersionedKV, *, cache_size: int = 50_000) -> None:
        self._kv = kv
        self._cache_size = cache_size
        self._written: OrderedDict[str, tuple[str, int]] = OrderedDict()

    @classmethod
    async def open(cls, bus: Bus, bucket: str = CONVERSATIONS_BUCKET) -> KVConversationStore:
        """The store over ``bucket`` (created on first use)."""
        return cls(await VersionedKV.open(bus, bucket))

    async def load(self, key: str) -> StoredState:
        """Read ``key``; a missing or unreadable value starts a fresh conversation."""
        found = await self._kv.get(key)
        if found is None:
            return StoredState(ConversationState(), None)
        try:
            state = ConversationState.model_validate_json(found.value)
        except ValueError:
            # A value written by an incompatible version: start over rather than fail every turn.
            state = ConversationState()
        return StoredState(state, found.revision)

    async def save(self, key: str, state: ConversationState, revision: int | None) -> int:
        """Compare-and-set write of ``state``."""
        raw = state.model_dump_json()
        try:
            if revision is None:
                new_revision = await self._kv.create(key, raw.encode())
            else:
                new_revision = await self._kv.update(key, raw.encode(), revision)
        except RevisionConflict as exc:
            self._written.pop(key, None)
            raise StateConflict(str(exc)) from exc
        except BaseException:  # unknown outcome (timeout, cancel): read the bucket next time
            self._written.pop(key, None)
            raise
        self._remember(key, raw, new_revision)
        return new_revision

    async def load_for_update(self, key: str) -> StoredState:
        """The state to decide a turn on: the one this store last wrote if it has it (possibly
        stale: the compare-and-set write will tell), else read from the bucket."""
        written = self._written.get(key)
        if written is None:
            return await self.load(key)
        self._written.move_to_end(key)
        raw, revision = written
        return StoredState(ConversationState.model_validate_json(raw), revision)

    def _remember(self, key: str, raw: str, revision: int) -> None:
        if self._cache_size <= 0:
            return
        self._written[key] = (raw, revision)
        self._written.move_to_end(key)
        if len(self._written) > self._cache_size:
            self._written.popitem(last=False)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._written.pop(key, None)
        await self._kv.delete(key)


class InMemoryConversationStore:
    """The same contract in a dict (unit tests of pure dialogue logic only)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, int]] = {}
        self._seq = 0

    async def load(self, key: str) -> StoredState:
        """Read ``key``."""
        if key not in self._data:
            return StoredState(ConversationState(), None)
        raw, revision = self._data[key]
        return StoredState(ConversationState.model_validate_json(raw), revision)

    async def save(self, key: str, state: ConversationState, revision: int | None) -> int:
        """Compare-and-set write."""
        current = self._data.get(key)
        if (current[1] if current else None) != revision:
            raise StateConflict(f"{key!r} changed since revision {revision}")
        self._seq += 1
        self._data[key] = (state.model_dump_json(), self._seq)
        return self._seq

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._data.pop(key, None)
