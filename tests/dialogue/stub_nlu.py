"""A small deterministic NLU engine for the dialogue tests (used until/unless the built-in
engine exists): TF-IDF word + character n-grams with logistic regression for intents, and
regexes, lookup tables, annotated values and synonyms of the training data for entities."""

from __future__ import annotations

import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from skills.nlu.types import EntityMatch, IntentScore, ParseResult, TrainingData


class StubEngine:
    """Trains in a second on the shipped data; same ``parse`` contract as every engine."""

    name = "stub"
    version = "stub-1"

    def __init__(self, data: TrainingData) -> None:
        self.synonyms = {k.lower(): v for k, v in data.synonyms.items()}
        self.features = FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                (
                    "chars",
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
                ),
            ]
        )
        texts = [e.text.lower() for e in data.examples]
        x = self.features.fit_transform(texts)
        self.model = LogisticRegression(C=20.0, max_iter=2000)
        self.model.fit(x, [e.intent for e in data.examples])
        self.regexes = [(r.name, re.compile(p)) for r in data.regexes for p in r.patterns]
        values: dict[str, set[str]] = {}
        for example in data.examples:
            for ent in example.entities:
                values.setdefault(ent.entity, set()).add(example.text[ent.start : ent.end].lower())
        for name, items in data.lookups.items():
            values.setdefault(name, set()).update(v.lower() for v in items)
        self.values = {name: sorted(items, key=len, reverse=True) for name, items in values.items()}

    async def parse(self, text: str) -> ParseResult:
        probs = self.model.predict_proba(self.features.transform([text.lower()]))[0]
        order = np.argsort(probs)[::-1]
        ranking = [
            IntentScore(name=str(self.model.classes_[i]), confidence=float(probs[i]))
            for i in order[:10]
        ]
        return ParseResult(
            text=text,
            intent=ranking[0],
            intent_ranking=ranking,
            entities=self._entities(text),
            engine=self.name,
            model_version=self.version,
        )

    def _entities(self, text: str) -> list[EntityMatch]:
        found: list[EntityMatch] = []
        taken: list[tuple[int, int]] = []

        def free(a: int, b: int) -> bool:
            return all(b <= s or a >= e for s, e in taken)

        for name, pattern in self.regexes:
            for m in pattern.finditer(text):
                if free(m.start(), m.end()):
                    taken.append((m.start(), m.end()))
                    found.append(self._match(name, text, m.start(), m.end(), "regex"))
        lowered = text.lower()
        for name in ("priority", "bot", "expert", "service", "metric", "period", "username"):
            for value in self.values.get(name, []):
                for m in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", lowered):
                    if free(m.start(), m.end()):
                        taken.append((m.start(), m.end()))
                        found.append(self._match(name, text, m.start(), m.end(), "lookup"))
        return found

    def _match(self, name: str, text: str, start: int, end: int, how: str) -> EntityMatch:
        surface = text[start:end]
        return EntityMatch(
            entity=name,
            value=self.synonyms.get(surface.lower(), surface),
            text=surface,
            start=start,
            end=end,
            extractor=how,
        )
