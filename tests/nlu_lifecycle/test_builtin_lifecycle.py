"""The real built-in engine through the whole lifecycle (skipped until it is importable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skills.nlu.lifecycle.artifacts import load_engine
from skills.nlu.lifecycle.manager import ModelManager
from skills.nlu.lifecycle.registry import DirectoryRegistry
from skills.nlu.lifecycle.training import train_model
from skills.nlu.rasa_data import load_training_data
from tests.nlu_data.conftest import FIXTURE_PROJECT

pytest.importorskip("skills.nlu.builtin.engine", reason="the built-in engine is not written yet")


async def test_builtin_engine_trains_saves_loads_and_serves(tmp_path: Path) -> None:
    data = load_training_data([FIXTURE_PROJECT / "data"])
    # Embeddings off keeps this lifecycle test light; the engine's own tests cover them.
    artifact = train_model(data, tmp_path / "models", config={"use_embeddings": False}, folds=3)
    assert artifact.metadata.engine == "builtin"
    assert artifact.metadata.config["use_embeddings"] is False
    evaluation = artifact.evaluation()
    assert evaluation is not None and evaluation.examples == len(data.examples)
    assert set(evaluation.per_intent) == set(data.intents)
    engine = load_engine(artifact.path)
    assert engine.version == artifact.version
    assert engine.parse_sync("hello there").model_version == artifact.version

    registry = DirectoryRegistry(tmp_path / "models")
    await registry.set_latest(artifact.version)
    manager = ModelManager(registry)
    await manager.start(require_model=True, follow=False)
    result = await manager.parse("book a flight from Berlin to London")
    assert result.engine == "builtin" and result.model_version == artifact.version
    await manager.aclose()
