"""Ticket rules: statuses and their allowed transitions, priorities, roles, SLA targets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

Status = Literal["open", "pending", "on_hold", "solved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
Role = Literal["admin", "agent", "user"]

STATUSES: Final[tuple[str, ...]] = ("open", "pending", "on_hold", "solved", "closed")
PRIORITIES: Final[tuple[str, ...]] = ("low", "normal", "high", "urgent")
ROLES: Final[tuple[str, ...]] = ("admin", "agent", "user")

#: Who may call what (``roles=`` of the handlers). Guests (widget and REST visitors nobody
#: identified) may open and follow their own tickets: ownership, not the role, protects them.
ANYONE: Final = {"guest", "user", "agent", "admin"}
STAFF: Final = {"agent", "admin"}
ADMIN: Final = {"admin"}
#: Other Frontdoor components acting for themselves (signed ``system:<component>`` claims).
SYSTEM: Final = {"system"}

#: status -> the statuses it may move to. ``closed -> open`` is a reopen.
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "open": frozenset({"pending", "on_hold", "solved", "closed"}),
    "pending": frozenset({"open", "on_hold", "solved", "closed"}),
    "on_hold": frozenset({"open", "pending", "solved", "closed"}),
    "solved": frozenset({"open", "closed"}),
    "closed": frozenset({"open"}),
}


class TransitionError(ValueError):
    """A status change the lifecycle does not allow."""


def check_transition(number: int, current: str, wanted: str) -> None:
    """Raise ``TransitionError`` with a clear message unless ``current -> wanted`` is allowed."""
    if current == wanted:
        raise TransitionError(f"Ticket #{number} is already {label(current)}.")
    allowed = TRANSITIONS[current]
    if wanted not in allowed:
        options = ", ".join(label(s) for s in STATUSES if s in allowed)
        raise TransitionError(
            f"Ticket #{number} is {label(current)}; it cannot move to {label(wanted)} "
            f"(allowed: {options})."
        )


def label(status: str) -> str:
    """Human label of a status (``on_hold`` -> ``on hold``)."""
    return status.replace("_", " ")


def higher_priority(priority: str) -> str:
    """The next priority up (``urgent`` stays ``urgent``)."""
    index = PRIORITIES.index(priority)
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]


@dataclass(frozen=True)
class SlaPolicy:
    """Targets in minutes per priority: first agent response and resolution."""

    first_response_minutes: dict[str, int]
    resolution_minutes: dict[str, int]

    def due(self, priority: str, since: datetime) -> tuple[datetime, datetime]:
        """``(first response due, resolution due)`` for a ticket opened at ``since``."""
        return (
            since + timedelta(minutes=self.first_response_minutes[priority]),
            since + timedelta(minutes=self.resolution_minutes[priority]),
        )
