"""Intent (and entity) evaluation: on a held-out test set or by stratified k-fold CV.

Numbers are computed with scikit-learn; the report is a pydantic model written as
``evaluation.json`` next to every model.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold

from skills.nlu.errors import TrainingDataError
from skills.nlu.types import Example, ParseResult, TrainingData

#: A trained model's parse function, as evaluation sees it.
Parser = Callable[[str], ParseResult]
#: Trains on a data set and returns its parse function (used by cross-validation).
Trainer = Callable[[TrainingData], Parser]


class IntentMetrics(BaseModel):
    """Precision, recall and F1 of one intent, with how many test examples it had."""

    precision: float
    recall: float
    f1: float
    support: int


class ConfusionPair(BaseModel):
    """How often ``actual`` was predicted as ``predicted``."""

    actual: str
    predicted: str
    count: int


class Misclassified(BaseModel):
    """One wrong prediction (for the report's error list)."""

    text: str
    actual: str
    predicted: str
    confidence: float


class EntityMetrics(BaseModel):
    """Exact-span entity extraction scores (micro-averaged over all entity types)."""

    precision: float
    recall: float
    f1: float
    support: int
    per_entity: dict[str, IntentMetrics] = Field(default_factory=dict)


class EvaluationReport(BaseModel):
    """The evaluation of one model (``evaluation.json``)."""

    method: str = Field(description="'cross-validation' or 'test-set'")
    folds: int | None = None
    examples: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_intent: dict[str, IntentMetrics]
    confusions: list[ConfusionPair] = Field(default_factory=list)
    errors: list[Misclassified] = Field(default_factory=list)
    entities: EntityMetrics | None = None


def _entity_metrics(
    gold: Sequence[Example], predictions: Sequence[ParseResult]
) -> EntityMetrics | None:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    any_gold = False
    for example, result in zip(gold, predictions, strict=True):
        want = {(e.entity, e.start, e.end) for e in example.entities}
        got = {(e.entity, e.start, e.end) for e in result.entities}
        any_gold = any_gold or bool(want)
        for entity, *_ in want & got:
            tp[entity] += 1
        for entity, *_ in got - want:
            fp[entity] += 1
        for entity, *_ in want - got:
            fn[entity] += 1
    if not any_gold:
        return None

    def score(t: int, p: int, n: int) -> IntentMetrics:
        precision = t / (t + p) if t + p else 0.0
        recall = t / (t + n) if t + n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return IntentMetrics(precision=precision, recall=recall, f1=f1, support=t + n)

    names = sorted(set(tp) | set(fp) | set(fn))
    total = score(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return EntityMetrics(
        **total.model_dump(), per_entity={n: score(tp[n], fp[n], fn[n]) for n in names}
    )


def score_predictions(
    gold: Sequence[Example],
    predictions: Sequence[ParseResult],
    *,
    method: str,
    folds: int | None = None,
    top_confusions: int = 10,
    max_errors: int = 50,
) -> EvaluationReport:
    """Compute the report from gold examples and the model's predictions for them."""
    if not gold:
        raise TrainingDataError("nothing to evaluate: the test data has no examples")
    actual = [e.intent for e in gold]
    predicted = [p.intent.name for p in predictions]
    labels = sorted(set(actual))
    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=labels, zero_division=0
    )
    per_intent = {
        label: IntentMetrics(
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(support[i]),
        )
        for i, label in enumerate(labels)
    }
    weights = np.asarray(support, dtype=float)
    confusion = Counter((a, p) for a, p in zip(actual, predicted, strict=True) if a != p)
    errors = sorted(
        (
            Misclassified(
                text=g.text,
                actual=g.intent,
                predicted=p.intent.name,
                confidence=p.intent.confidence,
            )
            for g, p in zip(gold, predictions, strict=True)
            if g.intent != p.intent.name
        ),
        key=lambda m: -m.confidence,
    )
    return EvaluationReport(
        method=method,
        folds=folds,
        examples=len(gold),
        accuracy=float(np.mean([a == p for a, p in zip(actual, predicted, strict=True)])),
        macro_f1=float(np.mean(f1)),
        weighted_f1=float(np.average(f1, weights=weights)) if weights.sum() else 0.0,
        per_intent=per_intent,
        confusions=[
            ConfusionPair(actual=a, predicted=p, count=c)
            for (a, p), c in sorted(confusion.items(), key=lambda kv: (-kv[1], kv[0]))[
                :top_confusions
            ]
        ],
        errors=errors[:max_errors],
        entities=_entity_metrics(gold, predictions),
    )


def evaluate_on(parse: Parser, test: TrainingData) -> EvaluationReport:
    """Evaluate a trained model on a held-out test set."""
    predictions = [parse(e.text) for e in test.examples]
    return score_predictions(test.examples, predictions, method="test-set")


def effective_folds(data: TrainingData, folds: int) -> int:
    """The number of folds stratified CV can use on ``data`` (at most the largest class size)."""
    counts = Counter(e.intent for e in data.examples)
    if len(counts) < 2:
        raise TrainingDataError("cross-validation needs at least two intents")
    return max(2, min(folds, max(counts.values()), len(data.examples)))


def cross_validate(
    data: TrainingData,
    trainer: Trainer,
    folds: int = 5,
    *,
    seed: int = 0,
    on_fold: Callable[[int, int], None] | None = None,
) -> EvaluationReport:
    """Stratified k-fold cross-validation: train on k-1 folds, predict the held-out fold.

    Every example is predicted exactly once, by a model that did not see it. Intents with
    fewer examples than folds are still spread over the folds (scikit-learn warns, we don't).
    """
    k = effective_folds(data, folds)
    labels = np.array([e.intent for e in data.examples])
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    predictions: list[ParseResult | None] = [None] * len(data.examples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        splits = list(splitter.split(np.zeros(len(labels)), labels))
    for fold, (train_idx, test_idx) in enumerate(splits):
        train = data.model_copy(update={"examples": [data.examples[i] for i in train_idx]})
        parse = trainer(train)
        for i in test_idx:
            predictions[i] = parse(data.examples[i].text)
        if on_fold is not None:
            on_fold(fold + 1, k)
    done: list[Any] = predictions
    return score_predictions(data.examples, done, method="cross-validation", folds=k)
