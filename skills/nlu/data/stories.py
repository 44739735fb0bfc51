"""Rasa ``stories:`` and ``rules:`` sections, kept as plain structured data (not executed)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from skills.nlu.data.yamlio import line_of, type_name
from skills.nlu.errors import TrainingDataError


class Story(BaseModel):
    """One story or rule: its name, steps (as written) and where it was read from."""

    kind: Literal["story", "rule"]
    name: str
    steps: list[dict[str, Any]] = Field(default_factory=list)
    condition: list[dict[str, Any]] = Field(default_factory=list)
    conversation_start: bool = False
    wait_for_user_input: bool = True
    source: str = ""
    line: int | None = None

    def _all_steps(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for step in [*self.condition, *self.steps]:
            out.append(step)
            for alt in step.get("or", []) or []:
                if isinstance(alt, dict):
                    out.append(alt)
        return out

    @property
    def intents(self) -> list[str]:
        """Intents the story's user turns express."""
        return [s["intent"] for s in self._all_steps() if isinstance(s.get("intent"), str)]

    @property
    def actions(self) -> list[str]:
        """Actions (``action:`` steps, including ``utter_`` responses) the story runs."""
        return [s["action"] for s in self._all_steps() if isinstance(s.get("action"), str)]

    @property
    def entities(self) -> list[str]:
        """Entity names mentioned in user steps."""
        names: list[str] = []
        for step in self._all_steps():
            for ent in step.get("entities", []) or []:
                if isinstance(ent, dict):
                    names.extend(str(k) for k in ent if k not in ("role", "group", "value"))
                elif isinstance(ent, str):
                    names.append(ent)
        return names

    @property
    def slots(self) -> list[str]:
        """Slots named in ``slot_was_set`` steps."""
        names: list[str] = []
        for step in self._all_steps():
            for slot in step.get("slot_was_set", []) or []:
                if isinstance(slot, dict):
                    names.extend(str(k) for k in slot)
                elif isinstance(slot, str):
                    names.append(slot)
        return names

    @property
    def loops(self) -> list[str]:
        """Forms/loops activated in ``active_loop`` steps (``null`` excluded)."""
        return [
            s["active_loop"] for s in self._all_steps() if isinstance(s.get("active_loop"), str)
        ]


def _plain(value: Any) -> Any:
    """Line-marked YAML values -> plain dict/list/str (for clean serialization)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def parse_story_section(
    items: Any, kind: Literal["story", "rule"], path: Any, section_line: int | None
) -> list[Story]:
    """Parse the value of a top-level ``stories:`` or ``rules:`` key."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise TrainingDataError(
            f"`{kind}` section must be a list, got {type_name(items)}", path, section_line
        )
    out: list[Story] = []
    for item in items:
        line = line_of(item, section_line)
        if not isinstance(item, dict) or not isinstance(item.get(kind), str):
            raise TrainingDataError(f"each item must start with `- {kind}: <name>`", path, line)
        steps = item.get("steps", [])
        if not isinstance(steps, list):
            raise TrainingDataError(f"{kind} {item[kind]!r}: `steps` must be a list", path, line)
        for step in steps:
            if not isinstance(step, dict):
                raise TrainingDataError(
                    f"{kind} {item[kind]!r}: a step must be a mapping "
                    f"(`- intent: ...`, `- action: ...`), got {type_name(step)}",
                    path,
                    line_of(step, line),
                )
        condition = item.get("condition", []) or []
        if not isinstance(condition, list):
            raise TrainingDataError(f"rule {item[kind]!r}: `condition` must be a list", path, line)
        out.append(
            Story(
                kind=kind,
                name=str(item[kind]),
                steps=_plain(steps),
                condition=_plain(condition),
                conversation_start=bool(item.get("conversation_start", False)),
                wait_for_user_input=bool(item.get("wait_for_user_input", True)),
                source=str(path),
                line=line,
            )
        )
    return out
