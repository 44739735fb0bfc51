"""The building blocks of the intent classifier: features, neighbour vote, probability mix."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfVectorizer

from skills.nlu.builtin.classifier import _knn_scores, _mix
from skills.nlu.builtin.features import BLOCKS, SparseFeaturizer

TRAIN = [
    "where is my card",
    "my card has not arrived yet",
    "how do I top up",
    "top-up failed twice!",
    "Can I get a refund?",
    "refund please, the  merchant   charged me twice",
]
NEW = [
    "card still not arrived",
    "why did my top up fail",
    "ÜNKNOWN wörds here",
    "",
    "refund refund",
]


def test_featurizer_matches_sklearn_tfidf_on_unseen_text() -> None:
    featurizer = SparseFeaturizer.fit(TRAIN)
    expected = []
    for params in BLOCKS.values():
        vectorizer = TfidfVectorizer(lowercase=True, sublinear_tf=True, **{**params, "min_df": 1})
        vectorizer.fit(TRAIN)
        expected.append(vectorizer.transform(NEW).toarray())
    # twice: the second pass reads the per-word n-gram cache
    for _ in range(2):
        got = featurizer.matrix(NEW).toarray()
        np.testing.assert_allclose(got, np.hstack(expected), atol=1e-12)


def test_knn_scores_are_the_best_similarity_per_intent() -> None:
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(7, 4)).astype(np.float32)
    starts = np.array([0, 3, 4])  # intent 0: rows 0-2, intent 1: row 3, intent 2: rows 4-6
    queries = rng.normal(size=(2, 4)).astype(np.float32)
    sims = queries @ memory.T
    expected = np.stack([sims[:, :3].max(1), sims[:, 3], sims[:, 4:].max(1)], axis=1)
    np.testing.assert_allclose(_knn_scores(queries, memory, starts), expected, rtol=1e-6)


def test_mix_is_a_distribution_and_ignores_a_missing_neighbour_vote() -> None:
    svm, logreg, knn = np.array([2.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0]), np.array([0, 0, 3.0])
    mixed = _mix(svm, logreg, 0.3, knn, 0.3)
    assert mixed.sum() == pytest.approx(1.0)
    expected = 0.4 * softmax(svm) + 0.3 * softmax(logreg) + 0.3 * softmax(knn)
    np.testing.assert_allclose(mixed, expected)
    # a model saved before the neighbour vote existed: SVM and regression only
    np.testing.assert_allclose(
        _mix(svm, logreg, 0.5, None, 0.3), 0.5 * softmax(svm) + 0.5 * softmax(logreg)
    )
