"""The bot registry: which bots the front door offers (chatbot, support, expert bots).

The chatbot and the support bot are built in; expert bots come from a YAML file
(``FRONTDOOR_EXPERTS_FILE``)::

    experts:
      - name: ops
        description: Operations expert (deploys, incidents, on-call)
        knowledge: knowledge/ops          # folder of documents it answers from
        persona: You are a calm, precise SRE.

Without a file, one expert named ``ops`` is offered. Most behaviour comes from the dialogue
engine; a ``BotProfile`` only names the bot, says what it is for and where its knowledge lives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from events.errors import FrontdoorError

BotKind = Literal["chatbot", "support", "expert"]
DEFAULT_BOT = "chatbot"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class UnknownBot(FrontdoorError):
    """A channel asked for a bot that is not configured."""


class BotConfigError(FrontdoorError):
    """The experts file cannot be read or does not validate."""


class BotProfile(BaseModel):
    """One bot the user can talk to."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: BotKind
    description: str = ""
    knowledge: Path | None = Field(default=None, description="Folder of the expert's documents")
    persona: str = Field(default="", description="How the bot speaks (system prompt style)")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("bot names are lower-case letters, digits, '_' or '-' (max 64)")
        return value


class _ExpertEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    knowledge: str | None = None
    persona: str = ""


class _ExpertsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experts: list[_ExpertEntry] = Field(default_factory=list)


BUILTIN_BOTS = (
    BotProfile(
        name="chatbot",
        kind="chatbot",
        description="General assistant: greets, explains what Frontdoor can do, routes requests",
    ),
    BotProfile(
        name="support",
        kind="support",
        description="Customer support: opens tickets, reports their status, hands off to a human",
    ),
)
DEFAULT_EXPERT = BotProfile(
    name="ops",
    kind="expert",
    description="Operations expert: services, deployments, incidents and metrics",
    persona="You are a calm, precise operations engineer.",
)


class BotRegistry:
    """The configured bots by name."""

    def __init__(self, bots: list[BotProfile]) -> None:
        self._bots: dict[str, BotProfile] = {}
        for bot in bots:
            if bot.name in self._bots:
                raise BotConfigError(f"bot {bot.name!r} is configured twice")
            self._bots[bot.name] = bot

    def __iter__(self) -> Iterator[BotProfile]:
        return iter(self._bots.values())

    def __contains__(self, name: object) -> bool:
        return name in self._bots

    def names(self) -> list[str]:
        """Names of every bot, built-ins first."""
        return list(self._bots)

    def get(self, name: str | None) -> BotProfile:
        """The bot named ``name`` (``None``/empty: the chatbot); raise ``UnknownBot`` otherwise."""
        key = name or DEFAULT_BOT
        try:
            return self._bots[key]
        except KeyError:
            raise UnknownBot(
                f"unknown bot {key!r}; choose one of: {', '.join(self._bots)}"
            ) from None

    def experts(self) -> list[BotProfile]:
        """The expert bots only."""
        return [b for b in self._bots.values() if b.kind == "expert"]


def load_bots(experts_file: Path | str | None = None) -> BotRegistry:
    """Built-in bots plus the experts of ``experts_file`` (default: the ``ops`` expert)."""
    if experts_file is None:
        return BotRegistry([*BUILTIN_BOTS, DEFAULT_EXPERT])
    path = Path(experts_file)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _ExpertsFile.model_validate(raw)
    except OSError as exc:
        raise BotConfigError(f"cannot read experts file {path}: {exc}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise BotConfigError(f"experts file {path} is not valid: {exc}") from exc
    experts: list[BotProfile] = []
    for entry in parsed.experts:
        knowledge = Path(entry.knowledge) if entry.knowledge else None
        if knowledge is not None and not knowledge.is_absolute():
            knowledge = path.parent / knowledge
        try:
            experts.append(
                BotProfile(
                    name=entry.name,
                    kind="expert",
                    description=entry.description,
                    knowledge=knowledge,
                    persona=entry.persona,
                )
            )
        except ValidationError as exc:
            raise BotConfigError(f"expert {entry.name!r} in {path}: {exc}") from exc
    if not experts:
        experts = [DEFAULT_EXPERT]
    return BotRegistry([*BUILTIN_BOTS, *experts])
