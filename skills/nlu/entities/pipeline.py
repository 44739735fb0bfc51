"""All entity extractors behind one call, with synonyms applied to every value."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from skills.nlu.entities.matchers import LookupExtractor, RegexExtractor
from skills.nlu.entities.tagger import CRFTagger
from skills.nlu.entities.tokens import Token
from skills.nlu.entities.values import parse_builtin_values
from skills.nlu.types import EntityMatch, RegexFeature, TrainingData

#: Preference when two extractors find the same entity at overlapping spans.
_PRIORITY = {"regex": 3, "lookup": 2, "crf": 1}
#: Messages whose regex/lookup/CRF entities are remembered (people repeat themselves: "hi",
#: "yes", button payloads; the CRF costs ~0.3 ms a message, a cache hit microseconds).
_CACHE_SIZE = 4096


class EntityPipeline:
    """Regexes + lookup tables + a learned CRF + built-in values, synonyms on top."""

    SPEC_FILE = "entities.json"

    def __init__(
        self,
        regexes: list[RegexFeature],
        lookups: dict[str, list[str]],
        synonyms: dict[str, str],
        builtin_values: bool = True,
    ) -> None:
        self.regexes = regexes
        self.lookups = lookups
        self.synonyms = {k.lower(): v for k, v in synonyms.items()}
        self.builtin_values = builtin_values
        self._regex = RegexExtractor(regexes)
        self._lookup = LookupExtractor(lookups)
        self._tagger: CRFTagger | None = None
        # depends on the text only (built-in values depend on the clock and are not cached)
        self._learned = functools.lru_cache(maxsize=_CACHE_SIZE)(self._learned_uncached)

    @property
    def tagger(self) -> CRFTagger | None:
        """The learned CRF tagger (None when no example is annotated)."""
        return self._tagger

    @tagger.setter
    def tagger(self, tagger: CRFTagger | None) -> None:
        self._tagger = tagger
        self._learned.cache_clear()

    @classmethod
    def train(cls, data: TrainingData, builtin_values: bool = True) -> EntityPipeline:
        """Build the rule extractors and train the CRF if any example is annotated."""
        synonyms = dict(data.synonyms)
        for example in data.examples:  # `[NYC]{"entity": "city", "value": "New York"}`
            for span in example.entities:
                surface = example.text[span.start : span.end]
                if span.value != surface:
                    synonyms.setdefault(surface.lower(), span.value)
        pipeline = cls(list(data.regexes), dict(data.lookups), synonyms, builtin_values)
        pipeline.tagger = CRFTagger.train(data.examples, pipeline.span_features)
        return pipeline

    def span_features(self, text: str, tokens: list[Token]) -> list[list[str]]:
        """For every token, the names of the regexes/lookup tables whose matches cover it."""
        hits = [*self._regex.extract(text), *self._lookup.extract(text)]
        out: list[list[str]] = []
        for tok in tokens:
            names = {
                f"{h.extractor}:{h.entity}" for h in hits if h.start < tok.end and h.end > tok.start
            }
            out.append(sorted(names))
        return out

    def extract(self, text: str, now: datetime | None = None) -> list[EntityMatch]:
        """Every entity in ``text``, sorted by position, values mapped through synonyms."""
        kept = list(self._learned(text))
        if self.builtin_values:
            values = parse_builtin_values(text, now)
            # a `ticket_id` regex or a CRF trained on `[#42](ticket_id)` yields the surface text;
            # for the same entity the built-in parser's normalised value ("42", a range) wins
            kept = [
                k
                for k in kept
                if not any(
                    v.entity == k.entity and v.start < k.end and v.end > k.start for v in values
                )
            ]
            kept.extend(values)
        out = [self._canonical(m) for m in kept]
        return sorted(out, key=lambda m: (m.start, m.end, m.entity))

    def _learned_uncached(self, text: str) -> tuple[EntityMatch, ...]:
        learned = [*self._regex.extract(text), *self._lookup.extract(text)]
        if self._tagger is not None:
            learned.extend(self._tagger.extract(text))
        return tuple(_dedupe(learned))

    def _canonical(self, match: EntityMatch) -> EntityMatch:
        if isinstance(match.value, str):
            canonical = self.synonyms.get(match.value.lower())
            if canonical is None:
                canonical = self.synonyms.get(match.text.lower())
            if canonical is not None:
                return match.model_copy(update={"value": canonical})
        return match

    def save(self, directory: Path) -> None:
        """Write the rule spec and the CRF model into ``directory``."""
        spec: dict[str, Any] = {
            "regexes": [r.model_dump(mode="json") for r in self.regexes],
            "lookups": self.lookups,
            "synonyms": self.synonyms,
            "builtin_values": self.builtin_values,
            "crf": self.tagger is not None,
        }
        (directory / self.SPEC_FILE).write_text(json.dumps(spec, ensure_ascii=False), "utf-8")
        if self.tagger is not None:
            (directory / CRFTagger.MODEL_FILE).write_bytes(self.tagger.model)

    @classmethod
    def load(cls, directory: Path) -> EntityPipeline:
        """Read what ``save`` wrote."""
        spec = json.loads((directory / cls.SPEC_FILE).read_text("utf-8"))
        pipeline = cls(
            [RegexFeature.model_validate(r) for r in spec["regexes"]],
            {k: list(v) for k, v in spec["lookups"].items()},
            dict(spec["synonyms"]),
            bool(spec["builtin_values"]),
        )
        if spec["crf"]:
            model = (directory / CRFTagger.MODEL_FILE).read_bytes()
            pipeline.tagger = CRFTagger(model, pipeline.span_features)
        return pipeline


def _dedupe(matches: list[EntityMatch]) -> list[EntityMatch]:
    """Among overlapping matches of the same entity keep the preferred (then longest) one."""
    ranked = sorted(
        matches, key=lambda m: (-_PRIORITY.get(m.extractor, 0), -(m.end - m.start), m.start)
    )
    kept: list[EntityMatch] = []
    for match in ranked:
        clash = any(
            match.start < k.end
            and match.end > k.start
            # a learned guess never overrides an explicit rule, whatever its entity
            and (k.entity == match.entity or (match.extractor == "crf" and k.extractor != "crf"))
            for k in kept
        )
        if not clash:
            kept.append(match)
    return kept
