"""Conversation state in NATS KV (real nats-server): restarts, replicas, concurrent writes."""

from __future__ import annotations

import asyncio

from events.envelope import Actor, Conversation
from events.kv import RevisionConflict, VersionedKV
from events.subjects import CONVERSATIONS_BUCKET
from skills.dialogue import (
    ConversationState,
    DialogueEngine,
    KVConversationStore,
    StateConflict,
    UserTurn,
    conversation_key,
)


def _turn(text: str, conv: Conversation) -> UserTurn:
    return UserTurn(text=text, conversation=conv, actor=Actor(id="U1", name="Ana"), bot="support")


async def test_form_survives_a_front_door_restart(bus, nlu, registry):
    conv = Conversation(channel="slack", id="C042", thread="1700000000.000100")
    first = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    out = await first.handle(_turn("I need to open a ticket", conv))
    assert out.requested_slot == "subject"
    out = await first.handle(_turn("VPN drops every ten minutes", conv))
    assert out.requested_slot == "description"
    del first  # "restart": a new engine (another replica) over the same bucket continues

    second = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    out = await second.handle(_turn("It disconnects every ten minutes since this morning.", conv))
    assert out.requested_slot == "contact_email"
    third = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    await third.handle(_turn("ana@example.com", conv))
    out = await second.handle(_turn("high", conv))
    (env,) = out.intents
    assert env.payload["subject"] == "VPN drops every ten minutes"
    assert env.payload["priority"] == "high"

    # the bucket really holds it (another thread of the same channel is a separate conversation)
    kv = await VersionedKV.open(bus, CONVERSATIONS_BUCKET)
    stored = await kv.get(conversation_key(conv))
    assert stored is not None
    state = ConversationState.model_validate_json(stored.value)
    assert (
        state.form is None
        and state.turns == 5
        and state.slots == {"contact_email": "ana@example.com"}
    )
    other = conv.model_copy(update={"thread": "1700000000.000200"})
    assert await kv.get(conversation_key(other)) is None


async def test_store_compare_and_set(bus):
    store = await KVConversationStore.open(bus)
    key = "web.abc"
    loaded = await store.load(key)
    assert loaded.revision is None
    rev = await store.save(key, ConversationState(turns=1), None)
    try:
        await store.save(key, ConversationState(turns=9), None)  # someone created it first
        raise AssertionError("expected a conflict")
    except StateConflict:
        pass
    rev2 = await store.save(key, ConversationState(turns=2), rev)
    try:
        await store.save(key, ConversationState(turns=9), rev)  # stale revision
        raise AssertionError("expected a conflict")
    except StateConflict:
        pass
    loaded = await store.load(key)
    assert loaded.revision == rev2 and loaded.state.turns == 2
    await store.delete(key)
    assert (await store.load(key)).revision is None
    kv = await VersionedKV.open(bus, CONVERSATIONS_BUCKET)
    try:
        await kv.update("web.abc", b"{}", 1)
        raise AssertionError("expected a conflict")
    except RevisionConflict:
        pass


async def test_concurrent_turns_on_two_replicas_lose_no_update(bus, nlu, registry):
    conv = Conversation(channel="web", id="race")
    a = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    b = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    outs = await asyncio.gather(
        *[(a if i % 2 else b).handle(_turn("hello", conv)) for i in range(8)]
    )
    assert all("ticket" in o.text for o in outs)
    state = (await (await KVConversationStore.open(bus)).load(conversation_key(conv))).state
    assert state.turns == 8  # every turn was applied on top of the previous one


async def test_remembered_state_is_used_until_another_writer_changes_it(bus):
    store = await KVConversationStore.open(bus)
    other = await KVConversationStore.open(bus)  # another replica over the same bucket
    key = "web.cached"
    first = ConversationState(turns=1)
    rev1 = await store.save(key, first, None)
    remembered = await store.load_for_update(key)
    assert remembered.revision == rev1 and remembered.state == first
    assert remembered.state is not (await store.load_for_update(key)).state  # never shared

    # the other replica writes: the remembered state is now stale ...
    fresh = await other.load(key)
    rev2 = await other.save(key, ConversationState(turns=2), fresh.revision)
    stale = await store.load_for_update(key)
    assert stale.revision == rev1
    # ... so the compare-and-set write refuses it, and the next read goes to the bucket
    try:
        await store.save(key, ConversationState(turns=99), stale.revision)
    except StateConflict:
        pass
    else:
        raise AssertionError("a write on a stale remembered revision must conflict")
    reread = await store.load_for_update(key)
    assert reread.revision == rev2 and reread.state.turns == 2
    # a deleted conversation is not resurrected from memory
    await store.delete(key)
    assert (await store.load_for_update(key)).revision is None


async def test_engine_with_a_stale_remembered_state_loses_no_update(bus, nlu, registry):
    conv = Conversation(channel="rest", id="stale-1")
    a = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    b = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    out = await a.handle(_turn("I need to open a ticket", conv))  # a remembers its write
    assert out.requested_slot == "subject"
    out = await b.handle(_turn("VPN drops every ten minutes", conv))  # b moves it on
    assert out.requested_slot == "description"
    # a's remembered state still asks for the subject: the CAS write fails, a re-reads
    out = await a.handle(_turn("It disconnects every ten minutes since this morning.", conv))
    assert out.requested_slot == "contact_email"
    kv = await VersionedKV.open(bus, CONVERSATIONS_BUCKET)
    stored = await kv.get(conversation_key(conv))
    assert stored is not None
    assert ConversationState.model_validate_json(stored.value).turns == 3


async def test_a_retried_turn_is_never_run_twice_and_gets_its_outcome_again(bus, nlu, registry):
    """A turn counts as done only when its outcome is stored (with the state, one write): a
    retry of the last turn (e.g. on another replica after a crash) gets the recorded outcome,
    a retry of an older one nothing, and the form does not move on twice."""
    conv = Conversation(channel="rest", id="retry-me")
    first = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    opening = _turn("I need to open a ticket", conv)
    out = await first.handle(opening)
    assert out.requested_slot == "subject" and not out.replayed
    subject = _turn("VPN drops every ten minutes", conv)
    answered = await first.handle(subject)
    assert answered.requested_slot == "description"

    other_replica = DialogueEngine(nlu, await KVConversationStore.open(bus), registry)
    again = await other_replica.handle(subject)
    assert again.replayed and again.text == answered.text
    assert [e.id for e in again.events] == [e.id for e in answered.events]
    older = await other_replica.handle(opening)
    assert older.already_done and older.messages == [] and older.intents == []
    kv = await VersionedKV.open(bus, CONVERSATIONS_BUCKET)
    stored = await kv.get(conversation_key(conv))
    assert stored is not None
    state = ConversationState.model_validate_json(stored.value)
    assert state.turns == 2 and state.requested_slot == "description"
    assert state.recent_turns == [str(opening.id), str(subject.id)]
