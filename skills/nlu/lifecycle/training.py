"""Train a model, evaluate it, and write it as a versioned artifact (``frontdoor train``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from skills.nlu.errors import TrainingDataError
from skills.nlu.lifecycle.artifacts import ModelArtifact, load_engine, read_artifact, write_artifact
from skills.nlu.lifecycle.engines import config_model, engine_class
from skills.nlu.lifecycle.evaluation import (
    EvaluationReport,
    Parser,
    cross_validate,
    effective_folds,
    evaluate_on,
)
from skills.nlu.types import TrainingData

#: ``progress(what is happening, overall fraction done 0..1)``
Progress = Callable[[str, float], None]


def _noop(_stage: str, _fraction: float) -> None:
    return None


def build_config(cls: type[Any], config: dict[str, Any] | BaseModel | None) -> Any:
    """Turn a plain mapping into the engine's config model (``BuiltinConfig``)."""
    if isinstance(config, BaseModel):
        return config
    model = config_model(cls)
    if model is None:
        return config
    try:
        return model.model_validate(config or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise TrainingDataError(f"invalid engine config: {problems}") from exc


def config_dict(config: Any) -> dict[str, Any]:
    """The config as JSON-able data for ``metadata.json``."""
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    return dict(config or {})


def _trainer(cls: type[Any], config: Any) -> Callable[[TrainingData], Parser]:
    def train(data: TrainingData) -> Parser:
        return cls.train(data, config).parse_sync

    return train


def train_model(
    data: TrainingData,
    out_dir: Path,
    *,
    engine: str = "builtin",
    config: dict[str, Any] | BaseModel | None = None,
    folds: int = 5,
    test_data: TrainingData | None = None,
    evaluate: bool = True,
    progress: Progress | None = None,
) -> ModelArtifact:
    """Train on ``data``, evaluate (k-fold CV, or ``test_data`` when given), write the artifact.

    Blocking and CPU-bound: call it from a thread in async code.
    """
    report = progress or _noop
    cls = engine_class(engine)
    cfg = build_config(cls, config)
    k = effective_folds(data, folds) if evaluate and test_data is None else 0
    units = k + 1  # one unit per CV fold, one for the final model
    evaluation: EvaluationReport | None = None
    if k:

        def on_fold(done: int, total: int) -> None:
            report(f"cross-validation fold {done}/{total}", done / units)

        report(f"cross-validation fold 1/{k}", 0.0)
        evaluation = cross_validate(data, _trainer(cls, cfg), k, on_fold=on_fold)

    def engine_progress(stage: str, fraction: float) -> None:
        report(f"training: {stage}", (k + max(0.0, min(1.0, fraction))) / units)

    report("training the model", k / units)
    started = time.perf_counter()
    trained = cls.train(data, cfg, engine_progress)
    seconds = time.perf_counter() - started
    if evaluate and test_data is not None:
        report("evaluating on the test set", k / units)
        evaluation = evaluate_on(trained.parse_sync, test_data)
    artifact = write_artifact(
        trained,
        data,
        out_dir,
        config=config_dict(cfg),
        training_seconds=seconds,
        evaluation=evaluation,
    )
    report("done", 1.0)
    return artifact


def evaluate_model(
    artifact_dir: Path,
    *,
    test_data: TrainingData | None = None,
    train_data: TrainingData | None = None,
    folds: int = 5,
    on_fold: Callable[[int, int], None] | None = None,
) -> EvaluationReport:
    """Evaluate a model on ``test_data``, or by k-fold CV of its engine+config on ``train_data``."""
    artifact = read_artifact(artifact_dir)
    if test_data is not None:
        return evaluate_on(load_engine(artifact).parse_sync, test_data)
    if train_data is None:
        raise ValueError("give test data, or training data for cross-validation")
    cls = engine_class(artifact.metadata.engine)
    cfg = build_config(cls, artifact.metadata.config)
    return cross_validate(train_data, _trainer(cls, cfg), folds, on_fold=on_fold)
