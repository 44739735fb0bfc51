"""The declarations of ``skills.yml`` as pydantic models (validated before anything runs).

A *skill* maps an intent (plus the slots its form fills) to a service action
``fd.intent.<service>.<action>`` with a payload template; a *persona* says which skills a bot
offers and how it greets; *slot rules* say how a slot's value is recognised and validated.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = r"^[a-z][a-z0-9_]*$"

#: Where a payload field's value can come from besides a slot.
PayloadSource = Literal[
    "text",
    "expert",
    "bot",
    "actor_id",
    "actor_name",
    "conversation_id",
    "channel",
    "conversation_ref",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PayloadField(_Strict):
    """One payload field: from a slot, from the turn (``source``), or a constant ``value``."""

    slot: str | None = None
    source: PayloadSource | None = None
    value: Any = None
    or_slot: str | None = Field(default=None, description="used when the first is empty")
    or_source: PayloadSource | None = Field(default=None, description="then this")
    type: Literal["str", "int", "float", "bool"] | None = None
    default: Any = Field(default=None, description="then this (else the field is left out)")
    max_length: int | None = Field(default=None, ge=1, description="cut longer text values")
    unless: list[str] = Field(
        default_factory=list, description="leave out when one of these fields (above) is set"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `subject: subject` is short for `subject: {slot: subject}`
        if isinstance(data, str):
            return {"slot": data}
        return data

    @model_validator(mode="after")
    def _one_origin(self) -> PayloadField:
        origins = [name for name in ("slot", "source", "value") if name in self.model_fields_set]
        if len(origins) != 1:
            raise ValueError(
                "a payload field needs exactly one of `slot`, `source` or `value` "
                f"(got {', '.join(origins) or 'none'})"
            )
        return self


class SlotRule(_Strict):
    """How a slot's value is recognised in a message and validated.

    ``kind``: ``text`` (free text, the whole message when the slot is asked for), ``email``
    (checked with email-validator), ``choice`` (one of ``choices`` or the domain's categorical
    values, with ``synonyms``), ``integer`` (the first number, e.g. ``#42`` -> 42).
    ``patterns`` are regexes tried on the message (group ``value`` or group 1 is the value)
    when the NLU found no entity for the slot.
    """

    kind: Literal["text", "email", "choice", "integer"] = "text"
    choices: list[str] = Field(default_factory=list)
    synonyms: dict[str, str] = Field(default_factory=dict)
    patterns: list[str] = Field(default_factory=list)
    min_length: int = Field(default=2, ge=1)
    max_length: int = Field(default=4000, ge=1)
    invalid: str | None = Field(
        default=None, description="re-prompt prefix; default: domain utter_invalid_<slot>"
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
        return patterns


class SkillSpec(_Strict):
    """One skill: intent (+ form) -> ``intent.<service>.<action>`` with a payload."""

    name: str = Field(pattern=_NAME)
    intent: str
    service: str = Field(pattern=_NAME)
    action: str = Field(pattern=_NAME)
    form: str | None = None
    slots: list[str] = Field(
        default_factory=list, description="optional slots read from the first message"
    )
    payload: dict[str, PayloadField] = Field(default_factory=dict)
    roles: list[str] | None = Field(default=None, description="hint: roles the service wants")
    title: str = Field(min_length=1, max_length=80, description="short label (buttons)")
    help: str | None = Field(default=None, description="one line of the help text")
    working: str | None = Field(default=None, description="said while the service works")
    reply: str = Field(default="{text}", description="template for the service's Reply")
    keep_slots: list[str] = Field(
        default_factory=list, description="form slots remembered after the skill ran"
    )


class Persona(_Strict):
    """A bot: which skills it offers, how it greets and introduces its help."""

    name: str = ""
    kind: Literal["assistant", "expert"] = "assistant"
    title: str
    greeting: str
    help_intro: str
    summary: str = Field(
        default="", description="what it can do, in one phrase (fallback, out of scope)"
    )
    skills: list[str] = Field(default_factory=lambda: ["*"], description="skill name globs")
    aliases: list[str] = Field(default_factory=list)
    expert_skill: str | None = Field(
        default=None, description="expert personas: the skill every question goes to"
    )
    expert: str | None = None


class ExpertSpec(_Strict):
    """A domain expert bot (``expert:<name>``)."""

    title: str
    description: str = ""


class DialoguePolicy(_Strict):
    """Thresholds of the dialogue (confidences are the NLU's, 0..1)."""

    fallback_threshold: float = Field(default=0.3, ge=0, le=1)
    ambiguity_margin: float = Field(default=0.08, ge=0, le=1)
    clarify_floor: float = Field(default=0.2, ge=0, le=1)
    digression_threshold: float = Field(default=0.5, ge=0, le=1)
    free_text_interrupt: float = Field(default=0.75, ge=0, le=1)
    max_last_intents: int = Field(default=5, ge=1, le=50)


class SkillsFile(_Strict):
    """The whole ``skills.yml``."""

    version: int = 1
    policy: DialoguePolicy = Field(default_factory=DialoguePolicy)
    default_persona: str = "chatbot"
    personas: dict[str, Persona]
    experts: dict[str, ExpertSpec] = Field(default_factory=dict)
    intent_titles: dict[str, str] = Field(default_factory=dict)
    slots: dict[str, SlotRule] = Field(default_factory=dict)
    skills: dict[str, SkillSpec]

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        # `skills: {ticket_create: {...}}` -> each spec knows its own name
        if isinstance(data, dict):
            data = dict(data)
            for key in ("skills", "personas"):
                section = data.get(key)
                if isinstance(section, dict):
                    data[key] = {
                        name: {"name": name, **body} if isinstance(body, dict) else body
                        for name, body in section.items()
                    }
        return data
