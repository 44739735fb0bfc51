"""Building a skill's ``intent.<service>.<action>`` envelope from slots and the turn.

Each payload field of the skill's declaration names where its value comes from (a slot, the
turn, a constant) with fallbacks; values are coerced to the declared type, empty ones left out.
"""

from __future__ import annotations

import uuid
from typing import Any

from events.envelope import Envelope
from events.subjects import intent_type
from skills.dialogue.types import UserTurn
from skills.routing.models import PayloadField, Persona, SkillSpec


def _coerce(value: Any, kind: str | None) -> Any:
    if kind is None or value is None:
        return value
    try:
        if kind == "int":
            digits = "".join(ch for ch in str(value) if ch.isdigit())
            return int(digits) if digits else None
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"yes", "true", "1", "y", "affirm"}
        return str(value)
    except (TypeError, ValueError):
        return None


def source_value(source: str, turn: UserTurn, persona: Persona) -> Any:
    """The value of a payload ``source`` (``text``, ``expert``, ``actor_id``, ...) for a turn."""
    conversation = turn.conversation
    return {
        "text": turn.text,
        "expert": persona.expert,
        "bot": persona.name,
        "actor_id": turn.actor.id,
        "actor_name": turn.actor.name,
        "conversation_id": conversation.id,
        "channel": conversation.channel,
        "conversation_ref": {"channel": conversation.channel, "id": conversation.id},
    }.get(source)


def field_value(spec: PayloadField, slots: dict[str, Any], turn: UserTurn, persona: Persona) -> Any:
    """One payload field: ``value``, else the first non-empty of slot/source, ``or_slot``,
    ``or_source``, ``default`` (coerced to ``type``, cut to ``max_length``)."""
    if "value" in spec.model_fields_set:
        return _coerce(spec.value, spec.type)
    candidates = [
        slots.get(spec.slot) if spec.slot else None,
        source_value(spec.source, turn, persona) if spec.source else None,
        slots.get(spec.or_slot) if spec.or_slot else None,
        source_value(spec.or_source, turn, persona) if spec.or_source else None,
        spec.default,
    ]
    for candidate in candidates:
        value = _coerce(candidate, spec.type)
        if value is not None and value != "":
            if isinstance(value, str) and spec.max_length is not None:
                value = value[: spec.max_length]
            return value
    return None


def build_payload(
    skill: SkillSpec, slots: dict[str, Any], turn: UserTurn, persona: Persona
) -> dict[str, Any]:
    """The skill's payload (fields in declaration order; ``unless`` looks at earlier ones)."""
    payload: dict[str, Any] = {}
    for name, spec in skill.payload.items():
        if any(payload.get(other) is not None for other in spec.unless):
            continue
        value = field_value(spec, slots, turn, persona)
        if value is not None:
            payload[name] = value
    return payload


def build_intent(
    turn: UserTurn, skill: SkillSpec, slots: dict[str, Any], persona: Persona
) -> Envelope:
    """The intent envelope: correlated with the turn, id derived from it (idempotent)."""
    return Envelope.new(
        intent_type(skill.service, skill.action),
        build_payload(skill, slots, turn, persona),
        conversation=turn.conversation.model_copy(update={"bot": persona.name}),
        actor=turn.actor,
        correlation_id=turn.id,
        causation_id=turn.id,
        id=uuid.uuid5(turn.id, f"intent.{skill.service}.{skill.action}"),
    )
