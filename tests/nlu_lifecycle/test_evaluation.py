"""Evaluation numbers on a tiny data set, checked against hand computation."""

from __future__ import annotations

import pytest

from skills.nlu.lifecycle.evaluation import cross_validate, score_predictions
from skills.nlu.types import (
    EntityMatch,
    EntitySpan,
    Example,
    IntentScore,
    ParseResult,
    TrainingData,
)
from tests.nlu_lifecycle.tiny_engine import TinyEngine


def _pred(text: str, intent: str, confidence: float = 0.9, entities=()) -> ParseResult:
    return ParseResult(
        text=text,
        intent=IntentScore(name=intent, confidence=confidence),
        entities=list(entities),
        engine="test",
        model_version="v",
    )


def test_scores_match_hand_computation() -> None:
    gold = [
        Example(text="a1", intent="a"),
        Example(text="a2", intent="a"),
        Example(text="a3", intent="a"),
        Example(text="b1", intent="b"),
        Example(text="b2", intent="b"),
        Example(text="c1", intent="c"),
    ]
    predicted = ["a", "a", "b", "b", "a", "c"]
    report = score_predictions(
        gold, [_pred(g.text, p) for g, p in zip(gold, predicted, strict=True)], method="test-set"
    )
    # a: tp=2 fp=1 fn=1 -> P=2/3 R=2/3 F1=2/3; b: tp=1 fp=1 fn=1 -> 1/2; c: 1
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.per_intent["a"].precision == pytest.approx(2 / 3)
    assert report.per_intent["a"].recall == pytest.approx(2 / 3)
    assert report.per_intent["b"].f1 == pytest.approx(0.5)
    assert report.per_intent["c"].f1 == pytest.approx(1.0)
    assert report.per_intent["a"].support == 3
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert report.weighted_f1 == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1 * 1.0) / 6)
    assert [(c.actual, c.predicted, c.count) for c in report.confusions] == [
        ("a", "b", 1),
        ("b", "a", 1),
    ]
    assert {e.text for e in report.errors} == {"a3", "b2"}
    assert report.entities is None


def test_fallback_predictions_count_as_misses() -> None:
    gold = [Example(text="x", intent="a"), Example(text="y", intent="b")]
    report = score_predictions(
        gold, [_pred("x", "a"), _pred("y", "nlu_fallback", 0.2)], method="test-set"
    )
    assert report.accuracy == 0.5
    assert report.per_intent["b"].recall == 0.0
    assert "nlu_fallback" not in report.per_intent
    assert report.confusions[0].predicted == "nlu_fallback"


def test_entity_scores_use_exact_spans() -> None:
    gold = [
        Example(
            text="to Rome",
            intent="a",
            entities=(EntitySpan(entity="city", start=3, end=7, value="Rome"),),
        ),
        Example(
            text="to Oslo",
            intent="a",
            entities=(EntitySpan(entity="city", start=3, end=7, value="Oslo"),),
        ),
    ]
    right = EntityMatch(entity="city", value="Rome", text="Rome", start=3, end=7, extractor="t")
    wrong = EntityMatch(entity="city", value="Osl", text="Osl", start=3, end=6, extractor="t")
    report = score_predictions(
        gold,
        [_pred("to Rome", "a", entities=[right]), _pred("to Oslo", "a", entities=[wrong])],
        method="test-set",
    )
    assert report.entities is not None
    assert (report.entities.precision, report.entities.recall) == (0.5, 0.5)
    assert report.entities.support == 2


def test_cross_validation_predicts_every_example_once_with_unseen_models(
    tiny_data: TrainingData,
) -> None:
    trained_sizes: list[int] = []

    def trainer(data: TrainingData):
        trained_sizes.append(len(data.examples))
        return TinyEngine.train(data).parse_sync

    folds_seen: list[tuple[int, int]] = []
    report = cross_validate(
        tiny_data, trainer, folds=4, on_fold=lambda d, t: folds_seen.append((d, t))
    )
    assert report.method == "cross-validation" and report.folds == 4
    assert report.examples == 12
    assert trained_sizes == [9, 9, 9, 9]  # each fold holds out 3 (one per intent)
    assert folds_seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert sum(m.support for m in report.per_intent.values()) == 12
    assert report.accuracy == 1.0  # the intents share no words


def test_folds_are_capped_by_the_largest_intent(tiny_data: TrainingData) -> None:
    report = cross_validate(tiny_data, lambda d: TinyEngine.train(d).parse_sync, folds=10)
    assert report.folds == 4
