"""A tiny word-overlap engine for lifecycle tests (stands in for any ``TrainableEngine``).

Deliberately simple and deterministic: the lifecycle (artifacts, registry, switching) is what
is under test, not classification quality.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from skills.nlu.types import IntentScore, ParseResult, TrainingData


def _tokens(text: str) -> list[str]:
    return [t for t in "".join(c.lower() if c.isalnum() else " " for c in text).split() if t]


class TinyEngine:
    """Scores intents by how many of the message's words their examples used."""

    name = "tiny"
    #: when set, ``parse`` waits for it (lets a test hold a parse "in flight")
    gate: asyncio.Event | None = None

    def __init__(self, words: dict[str, dict[str, int]], config: dict[str, Any] | None = None):
        self.words = words
        self.config = config or {}
        self.version = "unsaved"

    @classmethod
    def train(cls, data: TrainingData, config: Any = None, progress: Any = None) -> TinyEngine:
        words: dict[str, Counter[str]] = defaultdict(Counter)
        for i, example in enumerate(data.examples):
            words[example.intent].update(_tokens(example.text))
            if progress is not None:
                progress("counting words", (i + 1) / len(data.examples))
        return cls({k: dict(v) for k, v in words.items()}, config)

    def save(self, directory: Path) -> None:
        (directory / "words.json").write_text(json.dumps(self.words), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> TinyEngine:
        return cls(json.loads((directory / "words.json").read_text(encoding="utf-8")))

    def parse_sync(self, text: str) -> ParseResult:
        tokens = _tokens(text)
        scores = {
            intent: sum(1 for t in tokens if t in counts) + 1e-3 * sum(counts.values()) ** -1
            for intent, counts in self.words.items()
        }
        total = sum(scores.values()) or 1.0
        ranking = sorted(
            (IntentScore(name=k, confidence=v / total) for k, v in scores.items()),
            key=lambda s: (-s.confidence, s.name),
        )
        return ParseResult(
            text=text,
            intent=ranking[0],
            intent_ranking=ranking,
            engine=self.name,
            model_version=self.version,
        )

    async def parse(self, text: str) -> ParseResult:
        version = self.version
        if TinyEngine.gate is not None:
            await TinyEngine.gate.wait()
        result = self.parse_sync(text)
        assert result.model_version == version
        return result
