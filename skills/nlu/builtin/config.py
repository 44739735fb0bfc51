"""Hyper-parameters and run-time knobs of the built-in NLU engine."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BuiltinConfig(BaseModel):
    """Configuration of ``BuiltinEngine`` (defaults chosen by cross-validation, see docs)."""

    model_config = ConfigDict(extra="forbid")

    fallback_threshold: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description="top confidence below this -> intent `nlu_fallback`",
    )
    clarify_margin: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="top-2 confidences closer than this -> the dialogue may ask 'A or B?'",
    )
    ranking_length: int = Field(default=10, ge=1, description="intents kept in `intent_ranking`")
    use_embeddings: bool | None = Field(
        default=None,
        description="MiniLM sentence embeddings; None = use them if the [ml] extra imports",
    )
    svm_c: float = Field(default=0.5, gt=0, description="C of the linear SVMs")
    embedding_weight: float = Field(default=2.0, gt=0, description="scale of the embedding block")
    static_embeddings: bool = Field(
        default=True, description="fast model also reads MiniLM's static (input-layer) embeddings"
    )
    static_weight: float = Field(
        default=2.0, gt=0, description="scale of the static embedding block"
    )
    logreg_c: float = Field(
        default=20.0, gt=0, description="C of the embedding logistic regression"
    )
    embedding_mix: float = Field(default=0.3, ge=0, le=1, description="weight of that regression")
    knn_weight: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="weight of the nearest-neighbour vote (the SVM gets the rest)",
    )
    cv_folds: int = Field(default=3, ge=0, description="folds for calibration and the fast path")
    fast_path_threshold: float | None = Field(
        default=None, description="fast confidence that skips the encoder; None = chosen by CV"
    )
    fast_path_tolerance: float = Field(
        default=0.0025,
        ge=0,
        le=1,
        description="held-out accuracy the fast path may cost (CV choice)",
    )
    encoder_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="runs MiniLM: ONNX Runtime (exported once to a cache dir) or PyTorch;"
        " auto = onnx if onnxruntime imports (same embeddings up to ~1e-6: models stay valid)",
    )
    torch_threads: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=1,
        description="intra-op threads of the encoder (PyTorch or ONNX Runtime)",
    )
    max_batch: int = Field(
        default=64, ge=1, description="largest micro-batch of concurrent messages"
    )
    encode_chunk: int = Field(
        default=16, ge=1, description="messages per encoder call within a micro-batch"
    )
    batch_wait_ms: float = Field(default=0.0, ge=0, description="extra wait to fill a micro-batch")
    cache_size: int = Field(
        default=4096, ge=0, description="messages whose intent scores are cached"
    )
    builtin_values: bool = Field(default=True, description="numbers, e-mails, ticket ids, dates")
    seed: int = 0
