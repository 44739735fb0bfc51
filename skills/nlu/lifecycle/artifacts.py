"""Versioned model artifacts: a directory with the model, ``metadata.json``, ``evaluation.json``.

Layout of ``<models>/<version>/``::

    model/            the engine's own files (``engine.save``)
    metadata.json     ModelMetadata
    evaluation.json   EvaluationReport (absent when training skipped evaluation)

The version id is ``YYYYMMDD-HHMMSS-<first 8 hex of the data hash>``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from skills.nlu.errors import ModelArtifactError
from skills.nlu.lifecycle.engines import engine_class
from skills.nlu.lifecycle.evaluation import EvaluationReport
from skills.nlu.types import TrainingData

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
EVALUATION_FILE = "evaluation.json"
MODEL_DIR = "model"


class ModelMetadata(BaseModel):
    """What a model is: version, engine, data hash, config, when and how long it trained."""

    format_version: int = FORMAT_VERSION
    version: str
    engine: str
    created_at: datetime
    data_sha256: str
    config: dict[str, Any] = Field(default_factory=dict)
    intents: list[str]
    entities: list[str] = Field(default_factory=list)
    examples: int
    training_seconds: float


def data_hash(data: TrainingData) -> str:
    """sha256 of the training data's content, independent of file and example order."""
    canonical = {
        "examples": sorted(
            json.dumps(e.model_dump(mode="json"), sort_keys=True) for e in data.examples
        ),
        "synonyms": dict(sorted(data.synonyms.items())),
        "regexes": sorted(
            json.dumps(r.model_dump(mode="json"), sort_keys=True) for r in data.regexes
        ),
        "lookups": {k: sorted(v) for k, v in sorted(data.lookups.items())},
    }
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def new_version(data_sha256: str, when: datetime | None = None) -> str:
    """A version id: ``YYYYMMDD-HHMMSS-<hash8>`` (UTC)."""
    when = when or datetime.now(UTC)
    return f"{when.astimezone(UTC):%Y%m%d-%H%M%S}-{data_sha256[:8]}"


class ModelArtifact(BaseModel):
    """A model artifact directory on disk and its metadata."""

    path: Path
    metadata: ModelMetadata

    @property
    def version(self) -> str:
        """The model's version id."""
        return self.metadata.version

    def evaluation(self) -> EvaluationReport | None:
        """The stored evaluation, if training evaluated the model."""
        file = self.path / EVALUATION_FILE
        if not file.exists():
            return None
        try:
            return EvaluationReport.model_validate_json(file.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise ModelArtifactError(f"{file}: invalid evaluation: {exc}") from exc


def write_artifact(
    engine: Any,
    data: TrainingData,
    out_dir: Path,
    *,
    config: dict[str, Any] | None = None,
    training_seconds: float,
    evaluation: EvaluationReport | None = None,
    created_at: datetime | None = None,
) -> ModelArtifact:
    """Write a trained engine as a new versioned artifact directory under ``out_dir``.

    Written to a temporary sibling first and renamed, so a half-written artifact is never
    visible under its version name.
    """
    created_at = created_at or datetime.now(UTC)
    sha = data_hash(data)
    base = new_version(sha, created_at)
    out_dir.mkdir(parents=True, exist_ok=True)
    version, n = base, 1
    while (out_dir / version).exists():
        n += 1
        version = f"{base}-{n}"
    engine.version = version
    metadata = ModelMetadata(
        version=version,
        engine=engine.name,
        created_at=created_at,
        data_sha256=sha,
        config=config or {},
        intents=data.intents,
        entities=sorted({s.entity for e in data.examples for s in e.entities}),
        examples=len(data.examples),
        training_seconds=round(training_seconds, 3),
    )
    tmp = out_dir / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / MODEL_DIR).mkdir(parents=True)
    try:
        engine.save(tmp / MODEL_DIR)
        (tmp / METADATA_FILE).write_text(metadata.model_dump_json(indent=2), encoding="utf-8")
        if evaluation is not None:
            (tmp / EVALUATION_FILE).write_text(evaluation.model_dump_json(indent=2), "utf-8")
        tmp.rename(out_dir / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelArtifact(path=out_dir / version, metadata=metadata)


def read_artifact(path: Path) -> ModelArtifact:
    """Open an artifact directory (checks it is complete)."""
    meta_file = path / METADATA_FILE
    if not path.is_dir():
        raise ModelArtifactError(f"{path}: not a model artifact directory")
    if not meta_file.exists() or not (path / MODEL_DIR).is_dir():
        raise ModelArtifactError(f"{path}: incomplete model artifact (no metadata.json or model/)")
    try:
        metadata = ModelMetadata.model_validate_json(meta_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ModelArtifactError(f"{meta_file}: invalid metadata: {exc}") from exc
    if metadata.format_version > FORMAT_VERSION:
        raise ModelArtifactError(
            f"{path}: artifact format {metadata.format_version} is newer than this Frontdoor "
            f"understands ({FORMAT_VERSION})"
        )
    return ModelArtifact(path=path, metadata=metadata)


def load_engine(artifact: ModelArtifact | Path) -> Any:
    """Load the engine of an artifact, with its ``version`` set to the artifact's version."""
    if isinstance(artifact, Path):
        artifact = read_artifact(artifact)
    cls = engine_class(artifact.metadata.engine)
    engine = cls.load(artifact.path / MODEL_DIR)
    engine.version = artifact.metadata.version
    return engine


def pack_artifact(path: Path) -> bytes:
    """The artifact directory as a gzip'd tar (top-level folder = the version)."""
    artifact = read_artifact(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=artifact.version)
    return buffer.getvalue()


def unpack_artifact(blob: bytes, dest_root: Path, expected_version: str | None = None) -> Path:
    """Extract a packed artifact under ``dest_root``; returns its directory.

    Refuses archives with absolute paths, ``..``, links or more than one top-level folder.
    """
    dest_root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            members = tar.getmembers()
            tops = {m.name.split("/", 1)[0] for m in members}
            if len(tops) != 1:
                raise ModelArtifactError(f"artifact archive has {len(tops)} top-level entries")
            top = tops.pop()
            if expected_version is not None and top != expected_version:
                raise ModelArtifactError(
                    f"artifact archive holds version {top!r}, expected {expected_version!r}"
                )
            for m in members:
                if m.name.startswith("/") or ".." in m.name.split("/"):
                    raise ModelArtifactError(f"unsafe path in artifact archive: {m.name!r}")
                if not (m.isfile() or m.isdir()):
                    raise ModelArtifactError(f"unsupported entry in artifact archive: {m.name!r}")
            target = dest_root / top
            if target.exists():
                return read_artifact(target).path
            tmp = dest_root / f".{top}.unpack"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            tar.extractall(tmp)
            (tmp / top).rename(target)
            shutil.rmtree(tmp, ignore_errors=True)
    except tarfile.TarError as exc:
        raise ModelArtifactError(f"corrupted artifact archive: {exc}") from exc
    return read_artifact(target).path
