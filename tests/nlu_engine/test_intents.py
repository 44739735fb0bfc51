"""Intent classification: ranking, calibrated confidences, fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skills.nlu.builtin import FALLBACK_INTENT, BuiltinConfig, BuiltinEngine
from skills.nlu.types import NLUEngine, TrainingData

from .conftest import RAW, make_data


def test_engine_satisfies_the_contract(engine: BuiltinEngine) -> None:
    assert isinstance(engine, NLUEngine)
    assert engine.name == "builtin"
    assert engine.version == "dev"
    assert not engine.classifier.uses_embeddings


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hello there bot", "greet"),
        ("ok bye", "goodbye"),
        ("what's the status of ticket #5", "ticket_status"),
        ("send 10 euro to Ivan", "transfer"),
        ("sales report for last week", "report"),
    ],
)
def test_predicts_the_right_intent(engine: BuiltinEngine, text: str, intent: str) -> None:
    result = engine.parse_sync(text)
    assert result.intent.name == intent
    assert result.intent_ranking[0].name == intent
    assert not result.is_fallback
    assert result.engine == "builtin"
    assert result.model_version == "dev"


def test_ranking_is_sorted_and_confidences_form_a_distribution(engine: BuiltinEngine) -> None:
    result = engine.parse_sync("transfer 50 to Bob")
    confidences = [s.confidence for s in result.intent_ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    # five intents: the ranking holds all of them, so it sums to one
    assert {s.name for s in result.intent_ranking} == set(RAW)
    assert math.isclose(sum(confidences), 1.0, rel_tol=1e-6)
    assert result.intent.confidence == confidences[0]


def test_ranking_keeps_the_top_ten() -> None:
    raw = {
        f"intent_{i}": [f"word{i} alpha{i}", f"word{i} beta{i}", f"gamma{i} word{i}"]
        for i in range(12)
    }
    trained = BuiltinEngine.train(make_data(raw), BuiltinConfig(use_embeddings=False))
    result = trained.parse_sync("word3 alpha3")
    assert len(result.intent_ranking) == 10
    assert result.intent_ranking[0].name == "intent_3"
    # the ten most likely of all twelve, in order
    proba = trained.classifier.proba("word3 alpha3")
    expected = [trained.classifier.labels[i] for i in np.argsort(-proba, kind="stable")[:10]]
    assert [s.name for s in result.intent_ranking] == expected
    assert sum(s.confidence for s in result.intent_ranking) <= 1.0 + 1e-9


def test_fallback_below_threshold_keeps_the_ranking(data: TrainingData) -> None:
    strict = BuiltinEngine.train(data, BuiltinConfig(use_embeddings=False, fallback_threshold=0.7))
    result = strict.parse_sync("I want a pizza")
    assert result.intent_ranking[0].confidence < 0.7
    assert result.is_fallback
    assert result.intent.name == FALLBACK_INTENT
    assert result.intent.confidence == pytest.approx(0.7)
    assert len(result.intent_ranking) == len(RAW)
    assert result.intent_ranking[0].name in RAW
    assert not strict.parse_sync("hello there").is_fallback

    lenient = BuiltinEngine.train(data, BuiltinConfig(use_embeddings=False, fallback_threshold=0))
    relaxed = lenient.parse_sync("I want a pizza")
    assert not relaxed.is_fallback
    assert relaxed.intent == relaxed.intent_ranking[0] == result.intent_ranking[0]


def test_unknown_words_are_less_confident_than_training_like_text(engine: BuiltinEngine) -> None:
    known = engine.parse_sync("hello bot").intent_ranking[0].confidence
    unknown = engine.parse_sync("qwxz zzkj plonk").intent_ranking[0].confidence
    assert unknown < known


def test_calibration_was_fitted_by_cross_validation(engine: BuiltinEngine) -> None:
    stats = engine.classifier.stats
    assert stats["folds"] >= 2
    assert 0.0 < stats["cv_fast_accuracy"] <= 1.0
    assert stats["fast_temperature"] > 0


def test_clarification_candidates_when_top_two_are_close(engine: BuiltinEngine) -> None:
    result = engine.parse_sync("hello bot")
    wide = engine.config.model_copy(update={"clarify_margin": 1.0})
    narrow = engine.config.model_copy(update={"clarify_margin": 0.0})
    original = engine.config
    try:
        engine.config = wide
        assert engine.clarification_candidates(result) == [
            result.intent_ranking[0].name,
            result.intent_ranking[1].name,
        ]
        engine.config = narrow
        assert engine.clarification_candidates(result) == []
    finally:
        engine.config = original


def test_single_intent_and_empty_data() -> None:
    one = BuiltinEngine.train(
        make_data({"greet": ["hi", "hello"]}), BuiltinConfig(use_embeddings=False)
    )
    result = one.parse_sync("anything")
    assert result.intent.name == "greet"
    assert result.intent.confidence == 1.0
    from skills.nlu.errors import TrainingDataError

    with pytest.raises(TrainingDataError):
        BuiltinEngine.train(TrainingData(), BuiltinConfig(use_embeddings=False))
