"""Rasa entity annotations inside an example: strip them to plain text with exact spans.

Supported forms (Rasa 2 and 3):

- ``[Berlin](city)``                        entity ``city``, value ``Berlin``
- ``[NYC](city:New York)``                  Rasa 2 synonym shorthand: value ``New York``
- ``[Berlin]{"entity": "city", "role": "destination", "group": "1", "value": "BER"}``
- ``[Berlin][{"entity": "city"}, {"entity": "location"}]``  several entities on one span

A ``[text]`` not followed by ``(``, ``{`` or ``[`` stays literal text, as in Rasa.
"""

from __future__ import annotations

import json
from typing import Any

from skills.nlu.types import EntitySpan


class AnnotationError(ValueError):
    """An example's annotation is malformed (the message says what and where)."""


def _find_close(text: str, start: int, opener: str, closer: str) -> int:
    """Index of the ``closer`` matching ``text[start] == opener`` (JSON strings respected)."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"' and opener in "{[" and i > start:
            in_string = True
        elif ch == opener:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _entity_from_dict(raw: Any, surface: str) -> tuple[str, str, str | None, str | None]:
    if not isinstance(raw, dict):
        raise AnnotationError(f"entity annotation must be a JSON object, got {raw!r}")
    entity = raw.get("entity")
    if not isinstance(entity, str) or not entity.strip():
        raise AnnotationError(f'entity annotation {raw!r} has no "entity" name')
    unknown = set(raw) - {"entity", "value", "role", "group"}
    if unknown:
        raise AnnotationError(f"unknown key(s) {sorted(unknown)} in entity annotation {raw!r}")
    value = raw.get("value", surface)
    role = raw.get("role")
    group = raw.get("group")
    return (
        entity.strip(),
        str(value),
        None if role is None else str(role),
        None if group is None else str(group),
    )


def parse_annotated(raw: str) -> tuple[str, tuple[EntitySpan, ...]]:
    """Turn an annotated example into ``(plain text, entity spans)``.

    Raises ``AnnotationError`` for an unbalanced ``[``/``(``/``{``, an empty entity name, or
    invalid JSON in a ``{...}`` annotation.
    """
    out: list[str] = []
    spans: list[EntitySpan] = []
    pos = 0  # position in raw
    length = 0  # length of plain text produced so far
    while pos < len(raw):
        open_at = raw.find("[", pos)
        if open_at < 0:
            out.append(raw[pos:])
            break
        out.append(raw[pos:open_at])
        length += open_at - pos
        close_at = raw.find("]", open_at + 1)
        if close_at < 0:
            raise AnnotationError(f"unbalanced '[' at column {open_at + 1}: no closing ']'")
        surface = raw[open_at + 1 : close_at]
        after = close_at + 1
        nxt = raw[after] if after < len(raw) else ""
        entities: list[tuple[str, str, str | None, str | None]] = []
        if nxt == "(":
            end = raw.find(")", after)
            if end < 0:
                raise AnnotationError(
                    f"unbalanced '(' at column {after + 1}: annotation of {surface!r} not closed"
                )
            body = raw[after + 1 : end]
            name, _, value = body.partition(":")
            if not name.strip():
                raise AnnotationError(f"empty entity name in annotation [{surface}]({body})")
            entities.append((name.strip(), value.strip() if value else surface, None, None))
        elif nxt in ("{", "["):
            closer = "}" if nxt == "{" else "]"
            end = _find_close(raw, after, nxt, closer)
            if end < 0:
                raise AnnotationError(
                    f"unbalanced '{nxt}' at column {after + 1}: annotation of {surface!r} "
                    "not closed"
                )
            body = raw[after : end + 1]
            try:
                parsed = json.loads(body)
            except json.JSONDecodeError as exc:
                raise AnnotationError(
                    f"invalid JSON in annotation of {surface!r}: {exc.msg} ({body})"
                ) from exc
            items = parsed if isinstance(parsed, list) else [parsed]
            if not items:
                raise AnnotationError(f"empty entity list in annotation of {surface!r}")
            entities.extend(_entity_from_dict(item, surface) for item in items)
        else:
            # A bracketed text without annotation is literal text (Rasa does the same).
            out.append(raw[open_at:after])
            length += after - open_at
            pos = after
            continue
        if not surface.strip():
            raise AnnotationError(f"empty annotated text at column {open_at + 1}")
        if "[" in surface:
            raise AnnotationError(f"nested '[' inside annotation at column {open_at + 1}")
        for name, value, role, group in entities:
            spans.append(
                EntitySpan(
                    entity=name,
                    start=length,
                    end=length + len(surface),
                    value=value,
                    role=role,
                    group=group,
                )
            )
        out.append(surface)
        length += len(surface)
        pos = end + 1
    return "".join(out), tuple(spans)
