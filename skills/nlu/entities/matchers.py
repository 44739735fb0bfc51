"""Rule-based extractors: named regular expressions and lookup tables."""

from __future__ import annotations

import re
from collections.abc import Iterable

from skills.nlu.types import EntityMatch, RegexFeature


class RegexExtractor:
    """Finds every match of each named regex (Rasa ``regex:``); the name is the entity."""

    def __init__(self, regexes: Iterable[RegexFeature]) -> None:
        self.patterns: list[tuple[str, re.Pattern[str]]] = []
        for feature in regexes:
            for pattern in feature.patterns:
                try:
                    self.patterns.append((feature.name, re.compile(pattern, re.IGNORECASE)))
                except re.error as exc:
                    raise ValueError(
                        f"regex {feature.name!r}: invalid pattern {pattern!r}: {exc}"
                    ) from exc

    def extract(self, text: str) -> list[EntityMatch]:
        """All non-empty matches, as entities valued by the matched text."""
        found: list[EntityMatch] = []
        for name, pattern in self.patterns:
            for m in pattern.finditer(text):
                if m.end() > m.start():
                    found.append(_match(name, text, m.start(), m.end(), m.group(), "regex"))
        return found


class LookupExtractor:
    """Whole-word, case-insensitive matches of lookup-table values (longest value first)."""

    def __init__(self, lookups: dict[str, list[str]]) -> None:
        self.tables: list[tuple[str, re.Pattern[str], dict[str, str]]] = []
        for name, values in lookups.items():
            canon = {v.strip().lower(): v.strip() for v in values if v.strip()}
            if not canon:
                continue
            alternatives = "|".join(re.escape(v) for v in sorted(canon, key=len, reverse=True))
            pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
            self.tables.append((name, pattern, canon))

    def extract(self, text: str) -> list[EntityMatch]:
        """Matches valued by the table's own spelling of the value."""
        found: list[EntityMatch] = []
        for name, pattern, canon in self.tables:
            for m in pattern.finditer(text):
                value = canon.get(m.group().lower(), m.group())
                found.append(_match(name, text, m.start(), m.end(), value, "lookup"))
        return found


def _match(entity: str, text: str, start: int, end: int, value: str, extractor: str) -> EntityMatch:
    return EntityMatch(
        entity=entity,
        value=value,
        text=text[start:end],
        start=start,
        end=end,
        extractor=extractor,
        confidence=1.0,
    )
