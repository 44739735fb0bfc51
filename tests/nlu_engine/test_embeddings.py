"""The one test with the real MiniLM encoder (needs the [ml] extra)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skills.nlu.builtin import BuiltinConfig, BuiltinEngine
from skills.nlu.builtin.encoder import available

from .conftest import make_data

pytestmark = pytest.mark.ml


@pytest.mark.skipif(not available(), reason="the [ml] extra (torch, MiniLM) is not installed")
async def test_embedding_model_trains_parses_concurrently_and_round_trips(tmp_path: Path) -> None:
    # threshold above 1: every message goes through the encoder (the micro-batched path)
    config = BuiltinConfig(use_embeddings=True, fast_path_threshold=1.1)
    engine = BuiltinEngine.train(make_data(), config)
    assert engine.classifier.uses_embeddings
    assert engine.classifier.knn_memory is not None  # the neighbour vote is part of the model
    texts = ["good evening", "send 5 euro to Lea", "how is ticket #8 doing", "bye now", "hi"]
    sequential = [engine.parse_sync(t) for t in texts]
    assert [r.intent.name for r in sequential] == [
        "greet",
        "transfer",
        "ticket_status",
        "goodbye",
        "greet",
    ]
    engine.clear_cache()
    concurrent = list(await asyncio.gather(*(engine.parse(t) for t in texts)))
    # a padded batch sums in another order than a single message: equal up to float noise
    for batched, single in zip(concurrent, sequential, strict=True):
        assert [s.name for s in batched.intent_ranking] == [s.name for s in single.intent_ranking]
        for a, b in zip(batched.intent_ranking, single.intent_ranking, strict=True):
            assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
        assert batched.entities == single.entities
    engine.save(tmp_path)
    loaded = BuiltinEngine.load(tmp_path)
    loaded.now = engine.now
    assert loaded.classifier.knn_memory is not None
    assert [loaded.parse_sync(t) for t in texts] == sequential
