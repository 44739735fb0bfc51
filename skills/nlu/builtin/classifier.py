"""The intent classifier: a fast sparse model with an embedding-backed model behind it.

* **fast**: a linear SVM over word+char TF-IDF (microseconds per message), plus -- when the
  encoder is available -- MiniLM's *static* token embeddings averaged (its input layer: a table
  look-up, no transformer layers, ~0.1 ms), which lets more messages skip the encoder;
* **full** (only with sentence embeddings): a linear SVM over TF-IDF concatenated with the
  MiniLM embedding, a logistic regression over the embedding alone and a nearest-neighbour vote
  (per intent, the cosine similarity of the closest training message), probabilities averaged.

Scores become probabilities with a softmax whose temperature is fitted on out-of-fold scores
(cross-validation on the training data), so confidences are calibrated. A message whose fast
confidence reaches ``fast_threshold`` skips the encoder; the threshold is the lowest one at which
the cascade lost no out-of-fold accuracy against the full model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from skills.nlu.builtin.features import SparseFeaturizer

Progress = Callable[[str, float], None]
Embed = Callable[[Sequence[str]], np.ndarray]


class Row(NamedTuple):
    """The cheap features of one message: sparse TF-IDF and (optionally) a static embedding."""

    idx: np.ndarray
    values: np.ndarray
    static: np.ndarray | None


#: Softmax temperature when there is too little data to fit one (the value fitted on Banking77).
DEFAULT_TEMPERATURE = 5.0
#: Temperature of the nearest-neighbour similarities (the value fitted on Banking77).
DEFAULT_KNN_TEMPERATURE = 30.0
_THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98)


@dataclass
class Hyper:
    """Hyper-parameters of the classifier (see ``BuiltinConfig``)."""

    svm_c: float = 0.5
    embedding_weight: float = 2.0
    static_weight: float = 2.0
    logreg_c: float = 20.0
    embedding_mix: float = 0.3
    knn_weight: float = 0.3
    cv_folds: int = 3
    fast_threshold: float | None = None
    fast_tolerance: float = 0.0025
    seed: int = 0


@dataclass
class Linear:
    """Scores = x @ weights + bias; ``weights`` is (features x classes)."""

    weights: np.ndarray
    bias: np.ndarray

    @classmethod
    def from_sklearn(cls, model: Any, n_classes: int, binary_scale: float = 1.0) -> Linear:
        coef, intercept = model.coef_, model.intercept_
        if n_classes == 2 and coef.shape[0] == 1:  # sklearn keeps one column for 2 classes
            coef = np.vstack([-coef, coef]) * binary_scale
            intercept = np.array([-intercept[0], intercept[0]]) * binary_scale
        return cls(np.ascontiguousarray(coef.T, np.float32), intercept.astype(np.float32))


class IntentClassifier:
    """Predicts a probability for every intent (``labels``) of a message."""

    def __init__(
        self,
        labels: list[str],
        featurizer: SparseFeaturizer,
        fast: Linear | None,
        fast_temperature: float,
        full_sparse: Linear | None = None,
        full_dense: np.ndarray | None = None,
        logreg: Linear | None = None,
        full_temperature: float = DEFAULT_TEMPERATURE,
        hyper: Hyper | None = None,
        fast_threshold: float = 1.1,
        stats: dict[str, Any] | None = None,
        fast_dense: np.ndarray | None = None,
        knn_memory: np.ndarray | None = None,
        knn_starts: np.ndarray | None = None,
        knn_temperature: float = DEFAULT_KNN_TEMPERATURE,
    ) -> None:
        self.labels = labels
        self.featurizer = featurizer
        self.fast = fast
        self.fast_temperature = fast_temperature
        self.full_sparse = full_sparse
        self.full_dense = full_dense  # (embedding dim x classes), already scaled by the weight
        self.logreg = logreg
        self.full_temperature = full_temperature
        self.hyper = hyper or Hyper()
        self.fast_threshold = fast_threshold
        self.stats = stats or {}
        self.fast_dense = fast_dense  # (embedding dim x classes), scaled by static_weight
        # training embeddings grouped by intent; intent k owns rows knn_starts[k]:knn_starts[k+1]
        self.knn_memory = knn_memory
        self.knn_starts = knn_starts
        self.knn_temperature = knn_temperature

    @property
    def uses_embeddings(self) -> bool:
        """True if the full (embedding) model exists."""
        return self.full_sparse is not None

    # -- inference ---------------------------------------------------------------------------
    @property
    def uses_static(self) -> bool:
        """True if the fast model reads the static embedding too."""
        return self.fast_dense is not None

    def row(self, text: str, static: Embed | None = None) -> Row:
        """The cheap features of one message (``static`` is needed if ``uses_static``)."""
        return self.fast_batch([text], static)[0][0]

    def fast_proba(self, row: Row) -> np.ndarray:
        """Calibrated probabilities of the fast model."""
        return self.fast_probas([row])[0]

    def fast_batch(
        self, texts: Sequence[str], static: Embed | None = None
    ) -> tuple[list[Row], np.ndarray]:
        """Cheap features and fast-model probabilities (messages x intents) of many messages.

        The serving path: every message waiting in one event-loop iteration goes through one
        call (one static-embedding batch, one scoring pass), and ``parse_sync`` goes through it
        with one message, so a message scores the same alone or in a batch.
        """
        parts = [self.featurizer.row(t) for t in texts]
        statics = None
        if self.fast_dense is not None:
            if static is None:
                raise RuntimeError("this model needs sentence embeddings")
            statics = static(texts)
        rows = [
            Row(idx, values, None if statics is None else statics[i])
            for i, (idx, values) in enumerate(parts)
        ]
        return rows, self._fast_scores(rows, statics)

    def fast_probas(self, rows: Sequence[Row]) -> np.ndarray:
        """Fast-model probabilities (messages x intents) of ``rows``."""
        statics = None
        if self.fast_dense is not None and all(r.static is not None for r in rows):
            statics = np.stack([r.static for r in rows])  # type: ignore[misc]
        return self._fast_scores(rows, statics)

    def _fast_scores(self, rows: Sequence[Row], statics: np.ndarray | None) -> np.ndarray:
        if self.fast is None:
            return np.ones((len(rows), 1))
        scores = _sparse_scores(rows, self.fast.weights) + self.fast.bias
        if self.fast_dense is not None and statics is not None:
            scores = scores + statics @ self.fast_dense
        return softmax(scores * self.fast_temperature, axis=-1)

    def needs_embedding(self, fast: np.ndarray) -> bool:
        """True if the fast model is not confident enough on its own."""
        return self.uses_embeddings and float(fast.max()) < self.fast_threshold

    def dense(self, embeddings: np.ndarray) -> np.ndarray:
        """Sentence embeddings extended with their nearest-neighbour score for every intent.

        Batched (one matrix product for many messages), so the micro-batcher's worker thread
        does it rather than the event loop.
        """
        if self.knn_memory is None or self.knn_starts is None:
            return embeddings
        return np.hstack([embeddings, _knn_scores(embeddings, self.knn_memory, self.knn_starts)])

    def full_proba(self, row: Row, dense: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of the full model (``dense``: a row of ``dense()``)."""
        assert self.full_sparse is not None and self.full_dense is not None
        assert self.logreg is not None
        dim = self.full_dense.shape[0]
        embedding = dense[:dim]
        scores = (
            row.values @ self.full_sparse.weights[row.idx]
            + embedding @ self.full_dense
            + self.full_sparse.bias
        )
        knn = dense[dim:] if self.knn_memory is not None else None
        return _mix(
            scores * self.full_temperature,
            embedding @ self.logreg.weights + self.logreg.bias,
            self.hyper.embedding_mix,
            None if knn is None else knn * self.knn_temperature,
            self.hyper.knn_weight,
        )

    def proba(
        self, text: str, embed: Embed | None = None, static: Embed | None = None
    ) -> np.ndarray:
        """Probabilities for one message (``embed`` is called only when the cascade needs it)."""
        rows, fast = self.fast_batch([text], static)
        if not self.needs_embedding(fast[0]):
            return fast[0]
        if embed is None:
            raise RuntimeError("this model needs sentence embeddings")
        return self.full_proba(rows[0], self.dense(embed([text]))[0])

    # -- training ----------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        intents: Sequence[str],
        hyper: Hyper,
        embed: Embed | None = None,
        progress: Progress | None = None,
        static: Embed | None = None,
    ) -> IntentClassifier:
        """Fit both models, calibrate them and pick the fast-path threshold by cross-validation."""
        report = progress or (lambda stage, fraction: None)
        labels = sorted(set(intents))
        y = np.array([labels.index(i) for i in intents])
        report("featurising", 0.02)
        featurizer = SparseFeaturizer.fit(texts)
        if len(labels) == 1:
            return cls(labels, featurizer, None, DEFAULT_TEMPERATURE, hyper=hyper)
        embeddings = statics = None
        if embed is not None:
            report("encoding sentences", 0.05)
            embeddings = embed(list(texts))
            if static is not None:
                statics = static(list(texts))
        folds = min(hyper.cv_folds, int(np.bincount(y).min()))
        stats: dict[str, Any] = {"folds": folds if folds >= 2 else 0}
        fast_t = full_t = DEFAULT_TEMPERATURE
        knn_t = DEFAULT_KNN_TEMPERATURE
        threshold = hyper.fast_threshold if hyper.fast_threshold is not None else 0.9
        if folds >= 2:
            oof, held = _out_of_fold(
                texts, y, len(labels), hyper, embeddings, statics, folds, report
            )
            fast_t = _fit_temperature(oof["fast"], y)
            stats["cv_fast_accuracy"] = float((oof["fast"].argmax(1) == y).mean())
            if embeddings is not None:
                yh = y[held]
                full_t = _fit_temperature(oof["full"][held], yh)
                knn = None
                if hyper.knn_weight > 0:
                    knn_t = _fit_temperature(oof["knn"][held], yh)
                    knn = oof["knn"][held] * knn_t
                    stats["cv_knn_accuracy"] = float((knn.argmax(1) == yh).mean())
                full = _mix(
                    oof["full"][held] * full_t,
                    oof["logreg"][held],
                    hyper.embedding_mix,
                    knn,
                    hyper.knn_weight,
                )
                fast = softmax(oof["fast"][held] * fast_t, axis=1)
                curve = _threshold_curve(fast, full, yh)
                stats["cv_heldout_examples"] = len(yh)
                stats["cv_heldout_fast_accuracy"] = float((fast.argmax(1) == yh).mean())
                stats["cv_full_accuracy"] = float((full.argmax(1) == yh).mean())
                stats["cv_threshold_curve"] = curve
                if hyper.fast_threshold is None:
                    threshold = _pick_threshold(curve, stats["cv_full_accuracy"], hyper)
                covered = fast.max(1) >= threshold
                cascade = np.where(covered, fast.argmax(1), full.argmax(1))
                stats["cv_cascade_accuracy"] = float((cascade == yh).mean())
                stats["cv_fast_path_share"] = float(covered.mean())
        stats["fast_temperature"] = fast_t
        if embeddings is not None:
            stats.update(full_temperature=full_t, fast_threshold=threshold)
            if hyper.knn_weight > 0:
                stats["knn_temperature"] = knn_t
        report("fitting the final model", 0.8)
        X = featurizer.matrix(texts)
        models = _fit(X, y, len(labels), hyper, embeddings, statics)
        report("intent model ready", 0.95)
        return cls(
            labels,
            featurizer,
            models["fast"],
            fast_t,
            models.get("full_sparse"),
            models.get("full_dense"),
            models.get("logreg"),
            full_t,
            hyper,
            threshold if embeddings is not None else 1.1,
            stats,
            models.get("fast_dense"),
            models.get("knn_memory"),
            models.get("knn_starts"),
            knn_t,
        )


def _fit(
    X: sp.csr_matrix,
    y: np.ndarray,
    n: int,
    hyper: Hyper,
    embeddings: np.ndarray | None,
    statics: np.ndarray | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if statics is None:
        out["fast"] = Linear.from_sklearn(
            LinearSVC(C=hyper.svm_c, random_state=hyper.seed).fit(X, y), n
        )
    else:
        ws = hyper.static_weight
        F = sp.hstack([X, sp.csr_matrix(statics * ws)]).tocsr()
        fast = Linear.from_sklearn(LinearSVC(C=hyper.svm_c, random_state=hyper.seed).fit(F, y), n)
        out["fast"] = Linear(np.ascontiguousarray(fast.weights[: X.shape[1]]), fast.bias)
        out["fast_dense"] = np.ascontiguousarray(fast.weights[X.shape[1] :] * ws)
    if embeddings is not None:
        w = hyper.embedding_weight
        Z = sp.hstack([X, sp.csr_matrix(embeddings * w)]).tocsr()
        full = Linear.from_sklearn(LinearSVC(C=hyper.svm_c, random_state=hyper.seed).fit(Z, y), n)
        split = X.shape[1]
        out["full_sparse"] = Linear(np.ascontiguousarray(full.weights[:split]), full.bias)
        out["full_dense"] = np.ascontiguousarray(full.weights[split:] * w)
        logreg = LogisticRegression(C=hyper.logreg_c, max_iter=1000).fit(embeddings, y)
        out["logreg"] = Linear.from_sklearn(logreg, n, binary_scale=0.5)
        if hyper.knn_weight > 0:
            order = np.argsort(y, kind="stable")
            out["knn_memory"] = np.ascontiguousarray(embeddings[order], np.float32)
            out["knn_starts"] = np.searchsorted(y[order], np.arange(n)).astype(np.int64)
    return out


def _sparse_scores(rows: Sequence[Row], weights: np.ndarray) -> np.ndarray:
    """``values @ weights[idx]`` of every row, in one gather (float64, row order kept)."""
    lengths = np.fromiter((len(r.idx) for r in rows), np.int64, len(rows))
    out = np.zeros((len(rows), weights.shape[1]))
    if lengths.any():
        idx = np.concatenate([r.idx for r in rows])
        values = np.concatenate([r.values for r in rows])
        starts = np.cumsum(lengths) - lengths
        filled = lengths > 0  # reduceat cannot express an empty segment
        out[filled] = np.add.reduceat(weights[idx] * values[:, None], starts[filled], axis=0)
    return out


def _knn_scores(embeddings: np.ndarray, memory: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """For every intent, the cosine similarity of its closest training message."""
    sims = np.asarray(embeddings, np.float32) @ memory.T
    return np.maximum.reduceat(sims, starts, axis=1)


def _scores(model: Linear, X: Any) -> np.ndarray:
    return np.asarray(X @ model.weights) + model.bias


def _out_of_fold(
    texts: Sequence[str],
    y: np.ndarray,
    n: int,
    hyper: Hyper,
    embeddings: np.ndarray | None,
    statics: np.ndarray | None,
    folds: int,
    report: Progress,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Out-of-fold raw scores (featuriser refitted per fold: no leakage).

    The fast model is scored on every fold; the costly full model on the first fold only
    (its held-out third is enough to fit a temperature and the fast-path threshold, and it
    keeps training on 10k messages well under the 5-minute budget).
    """
    oof = {k: np.zeros((len(y), n)) for k in ("fast", "full", "logreg", "knn")}
    splitter = StratifiedKFold(folds, shuffle=True, random_state=hyper.seed)
    held = np.empty(0, np.int64)
    for k, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        report(f"cross-validation fold {k + 1}/{folds}", 0.1 + 0.6 * k / folds)
        featurizer = SparseFeaturizer.fit([texts[i] for i in train])
        X_train = featurizer.matrix([texts[i] for i in train])
        X_test = featurizer.matrix([texts[i] for i in test])
        emb = None
        if embeddings is not None and k == 0:
            emb = (embeddings[train], embeddings[test])
            held = test
        st = (statics[train], statics[test]) if statics is not None else None
        models = _fit(X_train, y[train], n, hyper, emb[0] if emb else None, st[0] if st else None)
        oof["fast"][test] = _scores(models["fast"], X_test)
        if st is not None:
            oof["fast"][test] += st[1] @ models["fast_dense"]
        if emb is not None:
            oof["full"][test] = (
                _scores(models["full_sparse"], X_test) + emb[1] @ models["full_dense"]
            )
            oof["logreg"][test] = _scores(models["logreg"], emb[1])
            if "knn_memory" in models:
                oof["knn"][test] = _knn_scores(emb[1], models["knn_memory"], models["knn_starts"])
    return oof, held


def _mix(
    svm_scores: np.ndarray,
    logreg_scores: np.ndarray,
    mix: float,
    knn_scores: np.ndarray | None = None,
    knn_weight: float = 0.0,
) -> np.ndarray:
    """Weighted average of the full model's probabilities (SVM, regression, neighbours)."""
    if knn_scores is None:  # a model trained without the neighbour vote
        knn_weight = 0.0
    svm_weight = max(0.0, 1.0 - mix - knn_weight)
    total = svm_weight + mix + knn_weight
    out = svm_weight * softmax(svm_scores, axis=-1) + mix * softmax(logreg_scores, axis=-1)
    if knn_scores is not None and knn_weight > 0:
        out = out + knn_weight * softmax(knn_scores, axis=-1)
    return out / total


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """scipy.special.softmax's arithmetic without its dispatch overhead (~12 us per call)."""
    z = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return z / np.sum(z, axis=axis, keepdims=True)


def _fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature minimising the out-of-fold negative log-likelihood."""

    def nll(t: float) -> float:
        p = softmax(scores * t, axis=1)[np.arange(len(y)), y]
        return float(-np.log(np.clip(p, 1e-12, None)).mean())

    return float(minimize_scalar(nll, bounds=(0.1, 100.0), method="bounded").x)


def _threshold_curve(fast: np.ndarray, full: np.ndarray, y: np.ndarray) -> list[dict[str, float]]:
    """Held-out share of fast-path messages and cascade accuracy for each candidate threshold."""
    curve = []
    for threshold in _THRESHOLDS:
        covered = fast.max(1) >= threshold
        cascade = np.where(covered, fast.argmax(1), full.argmax(1))
        curve.append(
            {
                "threshold": threshold,
                "fast_share": float(covered.mean()),
                "accuracy": float((cascade == y).mean()),
            }
        )
    return curve


def _pick_threshold(curve: list[dict[str, float]], full_accuracy: float, hyper: Hyper) -> float:
    """Lowest threshold whose cascade loses at most ``fast_tolerance`` held-out accuracy."""
    for point in curve:
        if point["accuracy"] >= full_accuracy - hyper.fast_tolerance:
            return point["threshold"]
    return 1.1  # never skip the encoder
