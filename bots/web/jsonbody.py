"""JSON from callers, parsed with a depth limit.

``json.loads`` recurses once per nesting level: 20,000 ``[`` exhaust the interpreter's stack
(``RecursionError``). ``parse_json`` refuses nesting deeper than ``max_depth`` (32 by default,
``FRONTDOOR_MAX_JSON_DEPTH``) with ``JsonTooDeep``, whatever the body's size.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_MAX_DEPTH = 32


class JsonTooDeep(ValueError):
    """JSON nested deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON is nested deeper than {limit} levels")
        self.limit = limit


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` (parsed JSON) nests lists/objects deeper than ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(raw: str | bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``json.loads(raw)``; ``JsonTooDeep`` beyond ``max_depth`` levels, ``ValueError`` (with
    ``json.JSONDecodeError`` / ``UnicodeDecodeError``) for what is not JSON."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    if depth_exceeds(value, max_depth):
        raise JsonTooDeep(max_depth)
    return value
