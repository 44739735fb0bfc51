"""Where published models live, and which one is current.

Two stores behind one interface (``ModelRegistry``):

- ``DirectoryRegistry``: a models folder (default ``./models``); each version is a
  sub-directory, the current one is named in the ``latest`` file.
- ``NatsRegistry``: the NATS object store (``MODELS_BUCKET``) holds each version as
  ``<version>.tar.gz``; the KV bucket ``MODELS_POINTER_BUCKET`` key ``latest`` names the
  current one. Every replica watches that key, so publishing switches them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from events import subjects
from skills.nlu.errors import ModelArtifactError, ModelNotFound, NLUEngineUnavailable
from skills.nlu.lifecycle.artifacts import pack_artifact, read_artifact, unpack_artifact

if TYPE_CHECKING:
    from events.bus import Bus

LATEST = "latest"
_ARCHIVE_SUFFIX = ".tar.gz"


@runtime_checkable
class ModelRegistry(Protocol):
    """A store of model artifacts with a ``latest`` pointer."""

    async def publish(self, artifact_dir: Path, *, make_latest: bool = True) -> str:
        """Store an artifact directory; by default make it the current version."""
        ...

    async def set_latest(self, version: str) -> None:
        """Point ``latest`` at a stored version (roll forward or back)."""
        ...

    async def latest(self) -> str | None:
        """The current version, or ``None`` if nothing was published yet."""
        ...

    async def versions(self) -> list[str]:
        """Every stored version, oldest first."""
        ...

    async def fetch(self, version: str) -> Path:
        """A local artifact directory for ``version`` (downloaded if needed)."""
        ...

    def watch(self) -> AsyncIterator[str | None]:
        """Yield the current version now and again every time it changes."""
        ...


class DirectoryRegistry:
    """Models in a folder: ``<root>/<version>/`` plus a ``<root>/latest`` pointer file."""

    def __init__(self, root: Path | str = "models", *, poll_interval: float = 1.0) -> None:
        self.root = Path(root)
        self.poll_interval = poll_interval

    async def publish(self, artifact_dir: Path, *, make_latest: bool = True) -> str:
        """Copy the artifact into the folder (unless it is already there); update ``latest``."""
        return await asyncio.to_thread(self._publish, artifact_dir, make_latest)

    def _publish(self, artifact_dir: Path, make_latest: bool) -> str:
        artifact = read_artifact(artifact_dir)
        target = self.root / artifact.version
        if artifact_dir.resolve() != target.resolve():
            if target.exists():
                raise ModelArtifactError(f"{target} already exists: version ids must be unique")
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{artifact.version}.copy"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(artifact_dir, tmp)
            tmp.rename(target)
        if make_latest:
            self._set_latest(artifact.version)
        return artifact.version

    async def set_latest(self, version: str) -> None:
        """Atomically rewrite the ``latest`` file (write a temp file, then rename)."""
        await asyncio.to_thread(self._set_latest, version)

    def _set_latest(self, version: str) -> None:
        read_artifact(self._dir(version))
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{LATEST}.{os.getpid()}.tmp"
        tmp.write_text(version + "\n", encoding="utf-8")
        os.replace(tmp, self.root / LATEST)

    async def latest(self) -> str | None:
        """The version named in ``latest`` (``None`` when there is no pointer file)."""
        return await asyncio.to_thread(self._latest)

    def _latest(self) -> str | None:
        try:
            text = (self.root / LATEST).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    async def versions(self) -> list[str]:
        """Complete artifact directories, oldest first (version ids sort by time)."""
        return await asyncio.to_thread(self._versions)

    def _versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "metadata.json").exists()
        )

    def _dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ModelNotFound(f"invalid model version {version!r}")
        path = self.root / version
        if not path.is_dir():
            raise ModelNotFound(f"model {version!r} is not in {self.root}")
        return path

    async def fetch(self, version: str) -> Path:
        """The artifact directory of ``version``."""
        return await asyncio.to_thread(lambda: read_artifact(self._dir(version)).path)

    async def watch(self) -> AsyncIterator[str | None]:
        """Poll the ``latest`` file every ``poll_interval`` seconds; yield on change."""
        last: object = object()
        while True:
            current = await self.latest()
            if current != last:
                last = current
                yield current
            await asyncio.sleep(self.poll_interval)


def _is_not_found(exc: BaseException) -> bool:
    """nats-py's "no such key/object/bucket" errors, recognised without importing nats here."""
    return "NotFound" in type(exc).__name__ or "Deleted" in type(exc).__name__


class NatsRegistry:
    """Models in the NATS object store, with the ``latest`` pointer in a KV bucket."""

    def __init__(
        self,
        bus: Bus,
        cache_dir: Path | str,
        *,
        bucket: str = subjects.MODELS_BUCKET,
        pointer_bucket: str = subjects.MODELS_POINTER_BUCKET,
        poll_interval: float = 5.0,
    ) -> None:
        self.bus = bus
        self.cache_dir = Path(cache_dir)
        self.bucket = bucket
        self.pointer_bucket = pointer_bucket
        self.poll_interval = poll_interval

    async def _store(self) -> Any:
        try:
            return await self.bus.object_store(self.bucket)
        except Exception as exc:
            raise NLUEngineUnavailable(f"model store {self.bucket!r} unavailable: {exc}") from exc

    async def _pointer(self) -> Any:
        try:
            return await self.bus.key_value(self.pointer_bucket)
        except Exception as exc:
            raise NLUEngineUnavailable(
                f"model pointer bucket {self.pointer_bucket!r} unavailable: {exc}"
            ) from exc

    async def publish(self, artifact_dir: Path, *, make_latest: bool = True) -> str:
        """Upload the artifact as ``<version>.tar.gz``; then point ``latest`` at it."""
        artifact = await asyncio.to_thread(read_artifact, artifact_dir)
        blob = await asyncio.to_thread(pack_artifact, artifact_dir)
        store = await self._store()
        await store.put(artifact.version + _ARCHIVE_SUFFIX, blob)
        if make_latest:
            await self.set_latest(artifact.version)
        return artifact.version

    async def set_latest(self, version: str) -> None:
        """Point ``latest`` at a stored version (checked to exist first)."""
        store = await self._store()
        try:
            await store.get_info(version + _ARCHIVE_SUFFIX)
        except Exception as exc:
            if _is_not_found(exc):
                raise ModelNotFound(f"model {version!r} is not in bucket {self.bucket}") from exc
            raise
        kv = await self._pointer()
        await kv.put(LATEST, version.encode())

    async def latest(self) -> str | None:
        """The version the ``latest`` key names (``None`` when never set)."""
        kv = await self._pointer()
        try:
            entry = await kv.get(LATEST)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise
        return entry.value.decode() if entry.value else None

    async def versions(self) -> list[str]:
        """Stored versions, oldest first."""
        store = await self._store()
        try:
            infos = await store.list(ignore_deletes=True)
        except Exception as exc:
            if _is_not_found(exc):
                return []
            raise
        return sorted(
            i.name.removesuffix(_ARCHIVE_SUFFIX) for i in infos if i.name.endswith(_ARCHIVE_SUFFIX)
        )

    async def fetch(self, version: str) -> Path:
        """Download and unpack ``version`` into the cache folder (once per version)."""
        cached = self.cache_dir / version
        if await asyncio.to_thread((cached / "metadata.json").exists):
            return await asyncio.to_thread(lambda: read_artifact(cached).path)
        store = await self._store()
        try:
            result = await store.get(version + _ARCHIVE_SUFFIX)
        except Exception as exc:
            if _is_not_found(exc):
                raise ModelNotFound(f"model {version!r} is not in bucket {self.bucket}") from exc
            raise
        return await asyncio.to_thread(unpack_artifact, result.data, self.cache_dir, version)

    async def watch(self) -> AsyncIterator[str | None]:
        """Yield the current version now, then on every change of the KV key.

        A KV watch pushes changes at once; a poll every ``poll_interval`` seconds covers a
        watch lost to a reconnect.
        """
        last: object = object()
        current = await self.latest()
        last = current
        yield current
        while True:
            watcher = None
            try:
                kv = await self._pointer()
                watcher = await kv.watch(LATEST, ignore_deletes=True)
                while True:
                    try:
                        entry = await watcher.updates(timeout=self.poll_interval)
                    except Exception as exc:  # nats TimeoutError: poll as a safety net
                        if "Timeout" not in type(exc).__name__:
                            raise
                        entry = None
                    current = (
                        entry.value.decode() if entry is not None and entry.value else None
                    ) or await self.latest()
                    if current != last:
                        last = current
                        yield current
            except (NLUEngineUnavailable, ConnectionError, OSError):
                await asyncio.sleep(self.poll_interval)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()
