"""Sparse text features: word and character n-gram TF-IDF (sklearn-compatible, JSON-saved).

Fitting uses sklearn's ``TfidfVectorizer``; the fitted state (vocabulary + idf) is kept as
plain arrays so a model is saved without pickle and one message is featurised in microseconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

#: The two blocks: (name, TfidfVectorizer parameters). Chosen by cross-validation (docs).
BLOCKS: dict[str, dict[str, Any]] = {
    "word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 1},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 2},
}

#: Words whose character n-gram ids are cached per block (bounded: arbitrary user input).
_WORD_CACHE_SIZE = 200_000


class TfidfBlock:
    """One fitted TF-IDF block (sublinear tf, idf, l2-normalised)."""

    def __init__(self, params: dict[str, Any], vocabulary: dict[str, int], idf: np.ndarray):
        self.params = params
        self.vocabulary = vocabulary
        self.idf = idf.astype(np.float64)
        vectorizer = _vectorizer(params)
        self._analyze: Callable[[str], list[str]] = vectorizer.build_analyzer()
        # char_wb n-grams never cross a word boundary, so a word's known n-gram ids are
        # cached: most words of a new message were seen before (saves ~half the parse cost)
        self._per_word = params["analyzer"] == "char_wb"
        self._preprocess: Callable[[str], str] = vectorizer.build_preprocessor()
        self._word_ids: dict[str, tuple[int, ...]] = {}

    @classmethod
    def fit(cls, params: dict[str, Any], texts: Sequence[str]) -> TfidfBlock:
        """Fit vocabulary and idf on ``texts`` (``min_df`` relaxed for tiny data sets)."""
        effective = dict(params)
        if len(texts) < 200:
            effective["min_df"] = 1
        vec = _vectorizer(effective)
        vec.fit(texts)
        vocabulary = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        return cls(effective, vocabulary, vec.idf_)

    @property
    def size(self) -> int:
        """Number of features."""
        return len(self.idf)

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature indices and values of one text."""
        if self._per_word:
            counts = Counter(
                chain.from_iterable(map(self._ids_of_word, self._preprocess(text).split()))
            )
        else:
            counts = Counter(
                self.vocabulary[g] for g in self._analyze(text) if g in self.vocabulary
            )
        if not counts:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        idx = np.fromiter(counts.keys(), np.int64, len(counts))
        tf = np.log(np.fromiter(counts.values(), np.float64, len(counts))) + 1.0  # sublinear
        values = tf * self.idf[idx]
        return idx, values / np.linalg.norm(values)

    def _ids_of_word(self, word: str) -> tuple[int, ...]:
        ids = self._word_ids.get(word)
        if ids is None:
            vocabulary = self.vocabulary
            ids = tuple(vocabulary[g] for g in self._analyze(word) if g in vocabulary)
            if len(self._word_ids) < _WORD_CACHE_SIZE:
                self._word_ids[word] = ids
        return ids

    def to_json(self) -> dict[str, Any]:
        """The fitted state as JSON-serialisable data."""
        params = {**self.params, "ngram_range": list(self.params["ngram_range"])}
        return {"params": params, "vocabulary": self.vocabulary, "idf": self.idf.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TfidfBlock:
        """Rebuild a block saved by ``to_json``."""
        params = {**data["params"], "ngram_range": tuple(data["params"]["ngram_range"])}
        return cls(params, dict(data["vocabulary"]), np.asarray(data["idf"], np.float64))


class SparseFeaturizer:
    """Word + char TF-IDF blocks concatenated into one sparse vector."""

    def __init__(self, blocks: list[TfidfBlock]) -> None:
        self.blocks = blocks
        self.offsets = np.cumsum([0, *(b.size for b in blocks)])

    @classmethod
    def fit(cls, texts: Sequence[str]) -> SparseFeaturizer:
        """Fit every block on ``texts``."""
        return cls([TfidfBlock.fit(params, texts) for params in BLOCKS.values()])

    @property
    def size(self) -> int:
        """Total number of features."""
        return int(self.offsets[-1])

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Indices and values of one text over all blocks."""
        parts = [b.row(text) for b in self.blocks]
        idx = np.concatenate([p[0] + off for p, off in zip(parts, self.offsets, strict=False)])
        return idx, np.concatenate([p[1] for p in parts])

    def matrix(self, texts: Sequence[str]) -> sp.csr_matrix:
        """A CSR matrix with one row per text."""
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        for text in texts:
            idx, values = self.row(text)
            indices.append(idx)
            data.append(values)
            indptr.append(indptr[-1] + len(idx))
        return sp.csr_matrix(
            (
                np.concatenate(data) if data else np.empty(0),
                np.concatenate(indices) if indices else np.empty(0, np.int64),
                np.asarray(indptr),
            ),
            shape=(len(texts), self.size),
        )

    def to_json(self) -> list[dict[str, Any]]:
        """The fitted state of every block."""
        return [b.to_json() for b in self.blocks]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> SparseFeaturizer:
        """Rebuild from ``to_json`` output."""
        return cls([TfidfBlock.from_json(d) for d in data])


def _vectorizer(params: dict[str, Any]) -> TfidfVectorizer:
    return TfidfVectorizer(lowercase=True, sublinear_tf=True, dtype=np.float64, **params)
