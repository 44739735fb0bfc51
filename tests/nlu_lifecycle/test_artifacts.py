"""Training writes a complete, versioned artifact; it packs, unpacks and loads again."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from skills.nlu.errors import ModelArtifactError
from skills.nlu.lifecycle.artifacts import (
    data_hash,
    load_engine,
    pack_artifact,
    read_artifact,
    unpack_artifact,
)
from skills.nlu.lifecycle.training import evaluate_model, train_model
from skills.nlu.types import TrainingData


def test_train_writes_model_metadata_and_evaluation(
    tiny_data: TrainingData, tmp_path: Path
) -> None:
    stages: list[tuple[str, float]] = []
    artifact = train_model(
        tiny_data,
        tmp_path / "models",
        engine="tiny",
        config={"alpha": 1},
        folds=3,
        progress=lambda s, f: stages.append((s, f)),
    )
    version = artifact.version
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", version)
    assert version.endswith(data_hash(tiny_data)[:8])
    assert artifact.path == tmp_path / "models" / version
    assert sorted(p.name for p in artifact.path.iterdir()) == [
        "evaluation.json",
        "metadata.json",
        "model",
    ]
    assert (artifact.path / "model" / "words.json").exists()
    meta = json.loads((artifact.path / "metadata.json").read_text())
    assert meta["version"] == version
    assert meta["engine"] == "tiny"
    assert meta["data_sha256"] == data_hash(tiny_data)
    assert meta["config"] == {"alpha": 1}
    assert meta["intents"] == ["goodbye", "greet", "open_ticket"]
    assert meta["entities"] == ["x"]
    assert meta["examples"] == 12
    assert meta["training_seconds"] >= 0
    assert meta["created_at"].startswith(version[:4])
    evaluation = json.loads((artifact.path / "evaluation.json").read_text())
    assert evaluation["method"] == "cross-validation" and evaluation["folds"] == 3
    assert set(evaluation["per_intent"]) == {"goodbye", "greet", "open_ticket"}
    assert evaluation["accuracy"] == 1.0
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(s.startswith("cross-validation fold 3/3") for s, _ in stages)

    engine = load_engine(artifact.path)
    assert engine.version == version
    assert engine.parse_sync("bye bye").intent.name == "goodbye"


def test_test_set_evaluation_and_evaluate_model(tiny_data: TrainingData, tmp_path: Path) -> None:
    test = TrainingData(
        examples=[
            tiny_data.examples[0].model_copy(update={"text": "hello you"}),
            tiny_data.examples[4].model_copy(update={"text": "hello and bye bye"}),
        ]
    )
    artifact = train_model(tiny_data, tmp_path, engine="tiny", test_data=test)
    evaluation = artifact.evaluation()
    assert evaluation is not None and evaluation.method == "test-set"
    assert evaluation.examples == 2
    again = evaluate_model(artifact.path, test_data=test)
    assert again.accuracy == evaluation.accuracy
    cv = evaluate_model(artifact.path, train_data=tiny_data, folds=2)
    assert cv.folds == 2 and cv.examples == 12


def test_no_eval_and_unique_versions(tiny_data: TrainingData, tmp_path: Path) -> None:
    first = train_model(tiny_data, tmp_path, engine="tiny", evaluate=False)
    second = train_model(tiny_data, tmp_path, engine="tiny", evaluate=False)
    assert first.evaluation() is None
    assert first.version != second.version  # same second, same data -> suffixed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_data_hash_ignores_order_but_not_content(tiny_data: TrainingData) -> None:
    shuffled = tiny_data.model_copy(update={"examples": list(reversed(tiny_data.examples))})
    assert data_hash(shuffled) == data_hash(tiny_data)
    changed = tiny_data.model_copy(
        update={
            "examples": [
                *tiny_data.examples[:-1],
                tiny_data.examples[-1].model_copy(update={"text": "x"}),
            ]
        }
    )
    assert data_hash(changed) != data_hash(tiny_data)


def test_pack_unpack_round_trip(tiny_data: TrainingData, tmp_path: Path) -> None:
    artifact = train_model(tiny_data, tmp_path / "a", engine="tiny", evaluate=False)
    blob = pack_artifact(artifact.path)
    restored = unpack_artifact(blob, tmp_path / "b", artifact.version)
    assert restored == tmp_path / "b" / artifact.version
    assert read_artifact(restored).metadata == artifact.metadata
    assert (restored / "model" / "words.json").read_bytes() == (
        artifact.path / "model" / "words.json"
    ).read_bytes()
    with pytest.raises(ModelArtifactError, match="expected"):
        unpack_artifact(blob, tmp_path / "c", "other-version")


def test_unsafe_or_broken_archives_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("v1/../../evil.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ModelArtifactError, match="unsafe path"):
        unpack_artifact(buffer.getvalue(), tmp_path)
    with pytest.raises(ModelArtifactError, match="corrupted"):
        unpack_artifact(b"not a tarball", tmp_path)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_incomplete_artifact_is_refused(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    with pytest.raises(ModelArtifactError, match="incomplete"):
        read_artifact(tmp_path / "v1")
