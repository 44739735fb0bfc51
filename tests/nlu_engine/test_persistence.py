"""Save/load round trip: the loaded model parses exactly like the trained one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skills.nlu.builtin import BuiltinEngine
from skills.nlu.errors import ModelArtifactError

from .conftest import FIXED_NOW

TEXTS = [
    "hello there",
    "send 20 euro to Bobby",
    "status of ticket #12 from last week",
    "where is ORD-1234",
    "pay 5 EUR to Alice today, mail a@b.io",
    "qwxz zzkj",
    "",
]


def test_round_trip_gives_identical_parses(engine: BuiltinEngine, tmp_path: Path) -> None:
    engine.version = "v7"
    try:
        engine.save(tmp_path)
        loaded = BuiltinEngine.load(tmp_path)
        loaded.now = lambda: FIXED_NOW
        assert loaded.version == "v7"
        assert loaded.config == engine.config
        for text in TEXTS:
            assert loaded.parse_sync(text) == engine.parse_sync(text)
    finally:
        engine.version = "dev"
    # saved without pickle: JSON, .npz and the CRF's own file
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "builtin.json",
        "entities.crfsuite",
        "entities.json",
        "features.json",
        "weights.npz",
    ]


def test_loading_a_broken_artifact_is_a_clear_error(engine: BuiltinEngine, tmp_path: Path) -> None:
    engine.save(tmp_path)
    (tmp_path / "weights.npz").unlink()
    with pytest.raises(ModelArtifactError, match="cannot read"):
        BuiltinEngine.load(tmp_path)
    meta = json.loads((tmp_path / "builtin.json").read_text())
    meta["format"] = "something-else"
    (tmp_path / "builtin.json").write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="not a built-in model"):
        BuiltinEngine.load(tmp_path)
