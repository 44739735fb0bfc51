"""Button payloads in Rasa's syntax: ``/intent`` or ``/intent{"entity": "value"}``.

A pressed button sends its payload as the message text; it is understood without the NLU, with
confidence 1.0, and its entities fill slots like the NLU's would.
"""

from __future__ import annotations

import json
import re
from typing import Any

from skills.nlu.types import EntityMatch, IntentScore, ParseResult

_PAYLOAD = re.compile(r"^/(?P<intent>[A-Za-z_][\w.-]*)(?P<entities>\{.*\})?\s*$", re.DOTALL)
ENGINE = "payload"


def is_payload(text: str) -> bool:
    """True when ``text`` looks like a button payload."""
    return bool(_PAYLOAD.match(text.strip()))


def parse_payload(text: str) -> ParseResult | None:
    """The ParseResult of a payload, or ``None`` when ``text`` is not a (valid) payload."""
    match = _PAYLOAD.match(text.strip())
    if match is None:
        return None
    entities: list[EntityMatch] = []
    raw = match.group("entities")
    if raw:
        try:
            values: Any = json.loads(raw)
        except json.JSONDecodeError:
            return None
        if not isinstance(values, dict):
            return None
        for name, value in values.items():
            entities.append(
                EntityMatch(
                    entity=str(name),
                    value=value,
                    text=str(value),
                    start=0,
                    end=0,
                    extractor=ENGINE,
                    confidence=1.0,
                )
            )
    intent = IntentScore(name=match.group("intent"), confidence=1.0)
    return ParseResult(
        text=text,
        intent=intent,
        intent_ranking=[intent],
        entities=entities,
        engine=ENGINE,
        model_version="-",
    )


def make_payload(intent: str, entities: dict[str, Any] | None = None) -> str:
    """Build a payload (``/intent{...}``) for a button."""
    if not entities:
        return f"/{intent}"
    return f"/{intent}{json.dumps(entities, separators=(',', ':'), ensure_ascii=False)}"
