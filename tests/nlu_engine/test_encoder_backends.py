"""The sentence encoder's backends: ONNX Runtime (exported once, cached) and PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from skills.nlu.builtin import BuiltinConfig, BuiltinEngine
from skills.nlu.builtin import encoder as encoder_module
from skills.nlu.builtin.encoder import SentenceEncoder, available, onnx_available

from .conftest import make_data
from .test_persistence import TEXTS

SENTENCES = [
    "how do I top up my card?",
    "My transfer hasn't arrived yet, it's been 3 days!",
    "hi",
    "Café: why was I charged twice — and by whom?",
]

needs_ml = pytest.mark.skipif(not available(), reason="the [ml] extra is not installed")
needs_onnx = pytest.mark.skipif(
    not (available() and onnx_available()), reason="the [ml] extra (onnxruntime) is not installed"
)


@pytest.fixture(scope="module")
def onnx_encoder(tmp_path_factory: pytest.TempPathFactory) -> SentenceEncoder:
    """An ONNX encoder exported into an empty cache directory."""
    return SentenceEncoder(2, "onnx", cache=tmp_path_factory.mktemp("encoders"))


@pytest.fixture(scope="module")
def torch_encoder() -> SentenceEncoder:
    """A PyTorch encoder (not warmed up: the tests need no steady latency)."""
    return SentenceEncoder(2, "torch")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(1))


@pytest.mark.ml
@needs_onnx
def test_onnx_embeddings_equal_torch_ones(
    onnx_encoder: SentenceEncoder, torch_encoder: SentenceEncoder
) -> None:
    assert onnx_encoder.backend == "onnx"
    assert torch_encoder.backend == "torch" and torch_encoder.onnx_path is None
    onnx_rows = onnx_encoder.encode(SENTENCES)
    assert _cosines(onnx_rows, torch_encoder.encode(SENTENCES)).min() > 0.9999
    # one at a time (no padding) equals the padded batch
    single = np.vstack([onnx_encoder.encode([s]) for s in SENTENCES])
    assert _cosines(single, onnx_rows).min() > 0.9999
    # the static embedding does not depend on the backend
    np.testing.assert_array_equal(onnx_encoder.static(SENTENCES), torch_encoder.static(SENTENCES))


@pytest.mark.ml
@needs_onnx
def test_the_exported_file_is_written_once_and_reused(
    onnx_encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = onnx_encoder.onnx_path
    assert path is not None and path.name == encoder_module.onnx_file_name()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind

    def export_again(target: Path) -> None:
        raise AssertionError(f"re-exported {target}")

    monkeypatch.setattr(encoder_module, "_export_atomically", export_again)
    again = SentenceEncoder(1, "onnx", cache=path.parent)
    assert again.onnx_path == path
    np.testing.assert_allclose(again.encode(SENTENCES), onnx_encoder.encode(SENTENCES), atol=1e-5)


@pytest.mark.ml
@needs_onnx
def test_cached_word_pieces_give_the_tokenizers_ids(onnx_encoder: SentenceEncoder) -> None:
    tokenizer = onnx_encoder._static_tokenizer
    texts = [
        *SENTENCES,
        *TEXTS,
        "  spaced   out  ",
        "tab\tand\x1cunit separator",
        " ".join(["supercalifragilistic"] * 60),  # truncated to 128 tokens
    ]
    for text in texts:
        assert onnx_encoder._static_ids(text) == tokenizer.encode(text).ids, text
    # a batch pools every message exactly as it pools it alone
    alone = np.vstack([onnx_encoder.static([t]) for t in texts])
    np.testing.assert_array_equal(onnx_encoder.static(texts), alone)


@pytest.mark.ml
@needs_ml
def test_the_torch_backend_can_still_be_chosen(
    torch_encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the process-wide torch encoder is this one (saves a second model load and warm-up)
    monkeypatch.setitem(encoder_module._ENCODERS, "torch", torch_encoder)
    config = BuiltinConfig(use_embeddings=True, encoder_backend="torch", fast_path_threshold=1.1)
    engine = BuiltinEngine.train(make_data(), config)
    assert engine.config.encoder_backend == "torch"
    texts = ["good evening", "send 5 euro to Lea", "bye now"]
    assert [engine.parse_sync(t).intent.name for t in texts] == ["greet", "transfer", "goodbye"]


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValidationError, match="encoder_backend"):
        BuiltinConfig(encoder_backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown encoder backend"):
        encoder_module.resolve_backend("tensorflow")


def test_a_model_saved_before_the_backend_knob_still_loads(
    engine: BuiltinEngine, tmp_path: Path
) -> None:
    engine.save(tmp_path)
    meta = json.loads((tmp_path / "builtin.json").read_text())
    del meta["config"]["encoder_backend"]
    (tmp_path / "builtin.json").write_text(json.dumps(meta))
    loaded = BuiltinEngine.load(tmp_path)
    assert loaded.config.encoder_backend == "auto"
    loaded.now = engine.now
    assert [loaded.parse_sync(t) for t in TEXTS] == [engine.parse_sync(t) for t in TEXTS]
