"""Built-in value parsers: numbers, e-mail addresses, ticket references and relative dates.

Dates are resolved against an injectable ``now`` (aware or naive ``datetime``); a day is an ISO
date string, a period is ``{"from": ISO date, "to": ISO date}`` (both ends inclusive; weeks run
Monday to Sunday).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from skills.nlu.types import EntityMatch

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_TICKET = re.compile(
    r"(?:(?<![\w&])#\s?(?P<a>\d+)\b)|(?:\bticket\s+(?:no\.?\s*|number\s+|#\s?)?(?P<b>\d+)\b)",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?<![\w.,])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,])|(?<![\w.,])-?\d+(?:\.\d+)?(?!\w)"
)
_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30,
    "fifty": 50, "hundred": 100,
}  # fmt: skip
_WORD_NUMBER = re.compile(r"\b(?:" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_RELATIVE = re.compile(
    r"\b(?:(?:the\s+)?day\s+before\s+yesterday|today|yesterday|tomorrow|tonight"
    r"|(?:this|last|next|previous|past)\s+(?:week|month|year)"
    r"|(?:last|past|previous)\s+(?P<n>\d+)\s+days?)\b",
    re.IGNORECASE,
)


def parse_builtin_values(text: str, now: datetime | None = None) -> list[EntityMatch]:
    """Every built-in value found in ``text``; overlaps resolved (longest span wins)."""
    today = (now or datetime.now().astimezone()).date()
    found: list[tuple[int, EntityMatch]] = []  # (priority, match)
    for m in _EMAIL.finditer(text):
        found.append((3, _entity("email", m.group(), text, m.start(), m.end())))
    for m in _TICKET.finditer(text):
        found.append((2, _entity("ticket_id", m.group("a") or m.group("b"), text, *m.span())))
    for m in _ISO_DATE.finditer(text):
        try:
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
        found.append((2, _entity("time", day.isoformat(), text, m.start(), m.end())))
    for m in _RELATIVE.finditer(text):
        value = resolve_relative(m.group(), today)
        if value is not None:
            found.append((2, _entity("time", value, text, m.start(), m.end())))
    for m in _NUMBER.finditer(text):
        raw = m.group().replace(",", "")
        number: int | float = float(raw) if "." in raw else int(raw)
        found.append((1, _entity("number", number, text, m.start(), m.end())))
    for m in _WORD_NUMBER.finditer(text):
        found.append((1, _entity("number", _WORD_NUMBERS[m.group().lower()], text, *m.span())))
    return _resolve_overlaps(found)


def resolve_relative(expression: str, today: date) -> str | dict[str, str] | None:
    """Resolve ``today``/``last week``/... against ``today``; ``None`` if not understood."""
    words = " ".join(expression.lower().split())
    if words in ("today", "tonight"):
        return today.isoformat()
    if words == "yesterday":
        return (today - timedelta(days=1)).isoformat()
    if words.endswith("day before yesterday"):
        return (today - timedelta(days=2)).isoformat()
    if words == "tomorrow":
        return (today + timedelta(days=1)).isoformat()
    head, _, unit = words.rpartition(" ")
    if unit in ("day", "days"):
        count = int(head.split()[-1])
        return _period(today - timedelta(days=count), today - timedelta(days=1))
    shift = {"this": 0, "last": -1, "previous": -1, "past": -1, "next": 1}[head]
    if unit == "week":
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        return _period(monday, monday + timedelta(days=6))
    if unit == "month":
        month_index = today.year * 12 + today.month - 1 + shift
        first = date(month_index // 12, month_index % 12 + 1, 1)
        following = date((month_index + 1) // 12, (month_index + 1) % 12 + 1, 1)
        return _period(first, following - timedelta(days=1))
    if unit == "year":
        year = today.year + shift
        return _period(date(year, 1, 1), date(year, 12, 31))
    return None


def _period(start: date, end: date) -> dict[str, str]:
    return {"from": start.isoformat(), "to": end.isoformat()}


def _entity(name: str, value: Any, text: str, start: int, end: int) -> EntityMatch:
    return EntityMatch(
        entity=name,
        value=value,
        text=text[start:end],
        start=start,
        end=end,
        extractor="builtin",
        confidence=1.0,
    )


def _resolve_overlaps(found: list[tuple[int, EntityMatch]]) -> list[EntityMatch]:
    """Keep non-overlapping matches, preferring longer spans, then higher priority."""
    ranked = sorted(found, key=lambda pm: (-(pm[1].end - pm[1].start), -pm[0], pm[1].start))
    kept: list[EntityMatch] = []
    for _, match in ranked:
        if all(match.end <= k.start or match.start >= k.end for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)
