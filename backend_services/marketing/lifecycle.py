"""The campaign lifecycle: which status may follow which, and through which action.

```
draft --schedule--> scheduled --(due / launch)--> active --pause--> paused --resume--> active
  |                    |                            |                 |
  +--launch--> active  +--pause--> paused           +--complete-->  completed <--complete--+
  +--cancel--> cancelled  (cancel from draft, scheduled or paused; completed/cancelled are final)
```
"""

from __future__ import annotations

from typing import Final

#: action -> (statuses it may start from, status it leads to)
TRANSITIONS: Final[dict[str, tuple[frozenset[str], str]]] = {
    "schedule": (frozenset({"draft", "scheduled", "paused"}), "scheduled"),
    "launch": (frozenset({"draft", "scheduled"}), "active"),
    "pause": (frozenset({"scheduled", "active"}), "paused"),
    "resume": (frozenset({"paused"}), "active"),
    "complete": (frozenset({"active", "paused"}), "completed"),
    "cancel": (frozenset({"draft", "scheduled", "paused"}), "cancelled"),
}

#: The domain event each action emits.
EVENT_OF: Final[dict[str, str]] = {
    "schedule": "campaign.scheduled",
    "launch": "campaign.launched",
    "pause": "campaign.paused",
    "resume": "campaign.resumed",
    "complete": "campaign.completed",
    "cancel": "campaign.cancelled",
}


class TransitionRefused(ValueError):
    """The campaign's status does not allow that action."""


def next_status(current: str, action: str) -> str:
    """The status after ``action``, or ``TransitionRefused`` explaining what is allowed."""
    if action not in TRANSITIONS:
        raise TransitionRefused(f"unknown campaign action '{action}'")
    allowed_from, target = TRANSITIONS[action]
    if current not in allowed_from:
        possible = sorted(a for a, (src, _) in TRANSITIONS.items() if current in src)
        hint = f" From {current} you can: {', '.join(possible)}." if possible else ""
        raise TransitionRefused(f"A {current} campaign cannot be {_past(action)}.{hint}")
    return target


def _past(action: str) -> str:
    return {
        "schedule": "scheduled",
        "launch": "launched",
        "pause": "paused",
        "resume": "resumed",
        "complete": "completed",
        "cancel": "cancelled",
    }[action]
