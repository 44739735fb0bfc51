"""A learned entity tagger: a linear-chain CRF (python-crfsuite) over token/context features.

Trained from the ``[text](entity)`` annotations with BILOU-free BIO tags; regex and lookup hits
are features too (as in Rasa's CRFEntityExtractor), so the tagger generalises from them.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pycrfsuite

from skills.nlu.entities.tokens import Token, tokenize
from skills.nlu.types import EntityMatch, Example

#: ``features(text) -> per-character flags``: names of regex/lookup hits covering a token.
SpanFeatures = Callable[[str, list[Token]], list[list[str]]]

_DIGITS = re.compile(r"\d")


def _shape(word: str) -> str:
    shape = re.sub(r"[A-Z]", "A", word)
    shape = re.sub(r"[a-z]", "a", shape)
    shape = _DIGITS.sub("0", shape)
    return re.sub(r"(.)\1+", r"\1\1", shape)


def token_features(tokens: Sequence[Token], extra: Sequence[Sequence[str]]) -> list[list[str]]:
    """CRF features of every token: the word, its shape and affixes, and its neighbours."""
    lowered = [t.text.lower() for t in tokens]
    out: list[list[str]] = []
    for i, tok in enumerate(tokens):
        w = lowered[i]
        feats = [
            "bias",
            f"w={w}",
            f"shape={_shape(tok.text)}",
            f"pre3={w[:3]}",
            f"suf3={w[-3:]}",
            f"suf2={w[-2:]}",
        ]
        if tok.text[:1].isupper():
            feats.append("title")
        if tok.text.isdigit():
            feats.append("digit")
        for offset in (-2, -1, 1, 2):
            j = i + offset
            if 0 <= j < len(tokens):
                feats.append(f"w[{offset}]={lowered[j]}")
                if abs(offset) == 1:
                    feats.append(f"shape[{offset}]={_shape(tokens[j].text)}")
                    feats.extend(f"{x}[{offset}]" for x in extra[j])
            else:
                feats.append(f"pad[{offset}]")
        feats.extend(extra[i])
        out.append(feats)
    return out


class CRFTagger:
    """Tags tokens with BIO entity labels; ``extract`` turns tags back into spans."""

    MODEL_FILE = "entities.crfsuite"

    def __init__(self, model: bytes, span_features: SpanFeatures) -> None:
        self.model = model
        self.span_features = span_features
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open_inmemory(model)

    @classmethod
    def train(
        cls,
        examples: Sequence[Example],
        span_features: SpanFeatures,
        c1: float = 0.05,
        c2: float = 0.05,
        max_iterations: int = 100,
    ) -> CRFTagger | None:
        """Train on annotated examples; ``None`` if nothing is annotated."""
        if not any(e.entities for e in examples):
            return None
        trainer = pycrfsuite.Trainer(verbose=False)
        for example in examples:
            tokens = tokenize(example.text)
            if not tokens:
                continue
            feats = token_features(tokens, span_features(example.text, tokens))
            trainer.append(feats, bio_tags(tokens, example))
        trainer.set_params(
            {
                "c1": c1,
                "c2": c2,
                "max_iterations": max_iterations,
                "feature.possible_transitions": True,
            }
        )
        with tempfile.TemporaryDirectory(prefix="fd-crf-") as tmp:
            path = Path(tmp) / cls.MODEL_FILE
            trainer.train(str(path))
            model = path.read_bytes()
        return cls(model, span_features)

    def extract(self, text: str) -> list[EntityMatch]:
        """Entities found by the CRF, with the marginal probability of their first tag."""
        tokens = tokenize(text)
        if not tokens:
            return []
        feats = token_features(tokens, self.span_features(text, tokens))
        tags = self._tagger.tag(feats)
        found: list[EntityMatch] = []
        i = 0
        while i < len(tags):
            tag = tags[i]
            if tag == "O":
                i += 1
                continue
            entity = tag[2:]
            j = i + 1
            while j < len(tags) and tags[j] == f"I-{entity}":
                j += 1
            start, end = tokens[i].start, tokens[j - 1].end
            confidence = min(self._tagger.marginal(tags[k], k) for k in range(i, j))
            found.append(
                EntityMatch(
                    entity=entity,
                    value=text[start:end],
                    text=text[start:end],
                    start=start,
                    end=end,
                    extractor="crf",
                    confidence=round(float(confidence), 4),
                )
            )
            i = j
        return found


def bio_tags(tokens: Sequence[Token], example: Example) -> list[str]:
    """BIO tags of ``tokens`` from the example's entity spans (overlapping tokens count)."""
    tags = ["O"] * len(tokens)
    for span in sorted(example.entities, key=lambda s: s.start):
        inside = [i for i, t in enumerate(tokens) if t.start < span.end and t.end > span.start]
        for n, i in enumerate(inside):
            if tags[i] == "O":
                tags[i] = ("B-" if n == 0 else "I-") + span.entity
    return tags
