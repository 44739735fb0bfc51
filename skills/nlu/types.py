"""The NLU contract every engine speaks (shaped like Rasa's ``/model/parse`` response).

Training data (``TrainingData``) is what the Rasa-format loader produces and what engines train
on; ``ParseResult`` is what every engine returns for one message.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class EntitySpan(BaseModel):
    """An entity annotated in a training example (``[text](entity)`` or ``[text]{...}``)."""

    model_config = ConfigDict(frozen=True)

    entity: str
    start: int
    end: int
    value: str
    role: str | None = None
    group: str | None = None


class Example(BaseModel):
    """One training utterance: plain text (annotations stripped), its intent and entities."""

    model_config = ConfigDict(frozen=True)

    text: str
    intent: str
    entities: tuple[EntitySpan, ...] = ()


class RegexFeature(BaseModel):
    """A named regular expression (Rasa ``regex:``); its name is usually an entity name."""

    model_config = ConfigDict(frozen=True)

    name: str
    patterns: tuple[str, ...]


class TrainingData(BaseModel):
    """Everything the NLU engines learn from."""

    examples: list[Example] = Field(default_factory=list)
    synonyms: dict[str, str] = Field(
        default_factory=dict, description="lower-cased surface text -> canonical value"
    )
    regexes: list[RegexFeature] = Field(default_factory=list)
    lookups: dict[str, list[str]] = Field(
        default_factory=dict, description="lookup table name (usually an entity) -> values"
    )

    @property
    def intents(self) -> list[str]:
        """Sorted distinct intent names."""
        return sorted({e.intent for e in self.examples})

    def merge(self, other: TrainingData) -> TrainingData:
        """Return the union of two data sets (as Rasa merges several ``nlu.yml`` files)."""
        lookups = {k: list(v) for k, v in self.lookups.items()}
        for name, values in other.lookups.items():
            lookups.setdefault(name, []).extend(values)
        return TrainingData(
            examples=[*self.examples, *other.examples],
            synonyms={**self.synonyms, **other.synonyms},
            regexes=[*self.regexes, *other.regexes],
            lookups=lookups,
        )


class IntentScore(BaseModel):
    """An intent name with its (calibrated) confidence in 0..1."""

    name: str
    confidence: float


class EntityMatch(BaseModel):
    """An entity found in a parsed message, with its character span in the message."""

    entity: str
    value: Any
    text: str
    start: int
    end: int
    extractor: str
    confidence: float | None = None
    role: str | None = None
    group: str | None = None


class ParseResult(BaseModel):
    """The result of parsing one message (Rasa ``/model/parse`` shaped)."""

    text: str
    intent: IntentScore
    intent_ranking: list[IntentScore] = Field(default_factory=list)
    entities: list[EntityMatch] = Field(default_factory=list)
    engine: str
    model_version: str
    is_fallback: bool = False


@runtime_checkable
class NLUEngine(Protocol):
    """What the dialogue layer needs from any engine (built-in or a Rasa server)."""

    @property
    def name(self) -> str:
        """Engine name, e.g. ``builtin`` or ``rasa``."""
        ...

    @property
    def version(self) -> str:
        """Version of the model currently loaded."""
        ...

    async def parse(self, text: str) -> ParseResult:
        """Understand one message."""
        ...
