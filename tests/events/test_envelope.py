"""Envelope round trip and the JSON-Schema snapshot of every envelope type.

The snapshot makes a contract change visible in review: when a schema changes on purpose,
regenerate with ``FRONTDOOR_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/events/test_envelope.py``.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from events.envelope import Actor, Conversation, Envelope
from events.payloads import PAYLOAD_TYPES, Button, Reply

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("FRONTDOOR_UPDATE_SNAPSHOTS") == "1"

CONV = Conversation(channel="slack", id="C123", thread="1700000000.123456", bot="support")
ACTOR = Actor(id="U1", name="Ada", roles=("user", "agent"))


def _schemas() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {"envelope": Envelope}
    for type_name, model in PAYLOAD_TYPES.items():
        out[f"payload.{type_name}"] = model
    return out


@pytest.mark.parametrize("name", sorted(_schemas()))
def test_json_schema_snapshot(name: str) -> None:
    model = _schemas()[name]
    current = json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
    path = SNAPSHOTS / f"{name}.schema.json"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(current)
        return
    assert path.exists(), (
        f"no snapshot for {name}: run FRONTDOOR_UPDATE_SNAPSHOTS=1 .venv/bin/pytest "
        f"tests/events/test_envelope.py and commit {path}"
    )
    assert path.read_text() == current, (
        f"the JSON Schema of {name} ({model.__name__}) changed. If this is intended (and "
        f"backward compatible, or a new type/v), regenerate with FRONTDOOR_UPDATE_SNAPSHOTS=1 "
        f".venv/bin/pytest tests/events/test_envelope.py and commit the snapshot."
    )


def test_no_stale_snapshots() -> None:
    expected = {f"{name}.schema.json" for name in _schemas()}
    present = {p.name for p in SNAPSHOTS.glob("*.schema.json")}
    assert present <= expected, f"snapshots without a type: {sorted(present - expected)}"


def test_round_trip_keeps_everything() -> None:
    reply = Reply(
        text="Ticket T-1 opened",
        service="management",
        action="ticket_create",
        data={"id": "T-1", "nested": {"n": [1, 2.5, None]}},
        buttons=[Button(title="Show", payload='/ticket_get{"id": "T-1"}')],
    )
    intent = Envelope.new(
        "intent.management.ticket_create", {"title": "héllo ✓"}, conversation=CONV, actor=ACTOR
    )
    env = intent.follow("reply", reply)
    back = Envelope.from_bytes(env.to_bytes())
    assert back == env
    assert back.payload_as(Reply) == reply
    assert back.correlation_id == intent.id and back.causation_id == intent.id
    assert back.conversation == CONV and back.actor == ACTOR
    assert back.occurred_at.tzinfo is not None


def test_readers_ignore_unknown_fields() -> None:
    env = Envelope.new("reply", Reply(text="x"), conversation=CONV, actor=ACTOR)
    raw = json.loads(env.to_bytes())
    raw["added_in_v2"] = {"anything": 1}
    raw["conversation"]["region"] = "eu"
    raw["payload"]["future_field"] = True
    back = Envelope.model_validate(raw)
    assert back == env.model_copy(update={"payload": {**env.payload, "future_field": True}})
    assert back.payload_as(Reply).text == "x"


def test_invalid_envelopes_are_rejected() -> None:
    good = json.loads(Envelope.new("reply", {}, conversation=CONV, actor=ACTOR).to_bytes())
    for field, value in [
        ("type", "Intent.Bad Type"),
        ("id", "not-a-uuid"),
        ("occurred_at", datetime(2024, 1, 1).isoformat()),  # naive: not allowed
        ("v", 0),
    ]:
        with pytest.raises(ValidationError):
            Envelope.model_validate({**good, field: value})
    with pytest.raises(ValidationError):
        Envelope.model_validate({k: v for k, v in good.items() if k != "conversation"})


def test_new_turn_correlates_with_itself_and_is_frozen() -> None:
    fixed = uuid.uuid4()
    env = Envelope.new("message.received", {"text": "hi"}, conversation=CONV, actor=ACTOR, id=fixed)
    assert env.id == env.correlation_id == fixed
    assert env.occurred_at <= datetime.now(UTC)
    with pytest.raises(ValidationError):
        env.type = "other"  # type: ignore[misc]
