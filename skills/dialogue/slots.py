"""Recognising and validating slot values (from NLU entities, button entities, the text).

A slot's ``SlotRule`` (skills.yml) says what kind of value it takes: free ``text``, an
``email`` (checked with email-validator), a ``choice`` (canonical values plus synonyms) or an
``integer`` (``#42`` -> 42). Values come, in order, from the NLU's entities (through the
domain's ``from_entity`` mappings), the domain's ``from_intent`` mappings, and — when the slot
is being asked for or a form is just starting — the rule's patterns and a scan of the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from skills.nlu.types import ParseResult
from skills.routing.models import SlotRule
from skills.routing.registry import SkillRegistry

_EMAIL_CANDIDATE = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+")
_INTEGER = re.compile(r"\d{1,9}")

_DEFAULT_INVALID = {
    "email": "That doesn't look like a valid email address.",
    "choice": "Please pick one of: {choices}.",
    "integer": "I need a number here.",
    "text": "I need a few more words here.",
}


@dataclass(frozen=True)
class SlotValue:
    """A recognised value (``value``) or why the candidate was refused (``error``)."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when a valid value was found."""
        return self.error is None and self.value is not None


def _email_reason(exc: EmailNotValidError) -> str:
    reason = str(exc).removeprefix("The email address is not valid. ").strip().rstrip(".")
    return (reason[:1].lower() + reason[1:]) if reason else "it is not a valid address"


class SlotFiller:
    """Finds slot values in a parsed message, normalised and validated per the slot's rule."""

    def __init__(self, registry: SkillRegistry) -> None:
        self.registry = registry
        self._entity_slots: dict[str, list[str]] = {}
        for name, slot in registry.domain.slots.items():
            for mapping in slot.mappings:
                if mapping.type == "from_entity" and mapping.entity:
                    self._entity_slots.setdefault(mapping.entity, []).append(name)

    # -- normalising one candidate ----------------------------------------------------------

    def normalise(self, slot: str, raw: Any) -> SlotValue:
        """Validate a candidate value for ``slot``; return the canonical value or an error."""
        rule = self.registry.slot_rule(slot)
        if raw is None:
            return SlotValue()
        text = str(raw).strip()
        if rule.kind == "email":
            try:
                info = validate_email(text, check_deliverability=False)
            except EmailNotValidError as exc:
                return SlotValue(error=self.invalid_message(slot, reason=_email_reason(exc)))
            return SlotValue(value=info.normalized)
        if rule.kind == "choice":
            found = self._choice(slot, rule, text, whole=True)
            if found is None:
                return SlotValue(error=self.invalid_message(slot))
            return SlotValue(value=found)
        if rule.kind == "integer":
            match = _INTEGER.search(text)
            if match is None or int(match.group()) < 1:
                return SlotValue(error=self.invalid_message(slot))
            return SlotValue(value=int(match.group()))
        if len(text) < rule.min_length:
            return SlotValue(error=self.invalid_message(slot))
        return SlotValue(value=text[: rule.max_length])

    def invalid_message(self, slot: str, reason: str = "") -> str:
        """What to say when a value for ``slot`` is refused."""
        rule = self.registry.slot_rule(slot)
        choices = ", ".join(self.registry.choices(slot))
        template = rule.invalid
        if template is None:
            text, _ = self.registry.response(f"utter_invalid_{slot}", reason=reason)
            template = text or _DEFAULT_INVALID[rule.kind]
        try:
            text = template.format(reason=reason or "it is not valid", choices=choices)
        except (KeyError, IndexError, ValueError):
            text = template
        if reason and "{reason}" not in template:
            text = f"{text.rstrip('.')} ({reason})."
        return text

    def _choice(self, slot: str, rule: SlotRule, text: str, *, whole: bool) -> str | None:
        """A canonical choice in ``text`` (the whole text, or any phrase in it when scanning)."""
        choices = {c.lower(): c for c in self.registry.choices(slot)}
        synonyms = {k.lower(): v for k, v in rule.synonyms.items()}
        lowered = text.lower().strip(" .!?")
        if whole:
            if lowered in choices:
                return choices[lowered]
            if lowered in synonyms and synonyms[lowered].lower() in choices:
                return choices[synonyms[lowered].lower()]
        # longest phrase first, so "very urgent" wins over "urgent", "last week" over "week"
        phrases = sorted({*choices, *synonyms}, key=len, reverse=True)
        for phrase in phrases:
            if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", lowered):
                canonical = synonyms.get(phrase, phrase).lower()
                if canonical in choices:
                    return choices[canonical]
        return None

    # -- finding values in a message ----------------------------------------------------------

    def from_entities(self, slot: str, parse: ParseResult) -> SlotValue:
        """The first valid value the NLU's (or a button's) entities give ``slot``."""
        error: str | None = None
        for entity in parse.entities:
            targets = self._entity_slots.get(entity.entity, [])
            if entity.entity != slot and slot not in targets:
                continue
            found = self.normalise(slot, entity.value)
            if found.ok:
                return found
            error = error or found.error
        return SlotValue(error=error)

    def from_intent(self, slot: str, parse: ParseResult, form: str | None) -> SlotValue:
        """A value from a ``from_intent`` mapping of the domain (e.g. affirm -> "yes")."""
        spec = self.registry.domain.slots.get(slot)
        if spec is None:
            return SlotValue()
        for mapping in spec.mappings:
            if mapping.type != "from_intent" or mapping.value is None:
                continue
            intents = mapping.intent if isinstance(mapping.intent, list) else [mapping.intent]
            if parse.intent.name not in intents:
                continue
            loops = [c.get("active_loop") for c in mapping.conditions if "active_loop" in c]
            if loops and form not in loops:
                continue
            return self.normalise(slot, mapping.value)
        return SlotValue()

    def scan(self, slot: str, text: str) -> SlotValue:
        """Look for ``slot``'s value anywhere in ``text`` (patterns, e-mails, choices)."""
        rule = self.registry.slot_rule(slot)
        for pattern in rule.patterns:
            match = re.search(pattern, text)
            if match is None:
                continue
            raw = match.groupdict().get("value") or (match.group(1) if match.groups() else None)
            found = self.normalise(slot, raw if raw is not None else match.group())
            if found.ok:
                return found
        if rule.kind == "email":
            for candidate in _EMAIL_CANDIDATE.findall(text):
                found = self.normalise(slot, candidate.rstrip("."))
                if found.ok:
                    return found
        if rule.kind == "choice":
            value = self._choice(slot, rule, text, whole=False)
            if value is not None:
                return SlotValue(value=value)
        return SlotValue()

    def answer(self, slot: str, parse: ParseResult, form: str | None) -> SlotValue:
        """The value of the slot the bot just asked for, or why the answer is refused."""
        rule = self.registry.slot_rule(slot)
        for found in (self.from_entities(slot, parse), self.from_intent(slot, parse, form)):
            if found.ok:
                return found
        text = parse.text.strip()
        if rule.kind == "text":
            return self.normalise(slot, text)
        found = self.scan(slot, text)
        if found.ok:
            return found
        if rule.kind == "integer" or (rule.kind == "email" and not _EMAIL_CANDIDATE.search(text)):
            # asked for a number: any number in the answer will do; a non-address is explained
            return self.normalise(slot, text)
        entity_error = self.from_entities(slot, parse).error
        return SlotValue(error=entity_error or self.normalise(slot, text).error)

    def extra(self, slot: str, parse: ParseResult, *, scan: bool) -> Any:
        """A value for a slot that was *not* asked for (several slots in one message).

        Entities always count; with ``scan`` (the message that starts a form) the rule's
        patterns and choices are tried on the text too. Free text is never taken here, and
        e-mail addresses are always recognised (they cannot be mistaken for anything else).
        """
        found = self.from_entities(slot, parse)
        if found.ok:
            return found.value
        rule = self.registry.slot_rule(slot)
        if scan or rule.kind == "email":
            found = self.scan(slot, parse.text)
            if found.ok:
                return found.value
        return None
