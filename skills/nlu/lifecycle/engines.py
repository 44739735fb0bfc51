"""Which engine classes can be trained into (and loaded from) a model artifact.

An artifact records its engine's name; ``engine_class(name)`` finds the class again. The
built-in engine is registered lazily (importing it may be heavy); others can be added with
``register_engine_class``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from skills.nlu.errors import ModelArtifactError
from skills.nlu.types import ParseResult, TrainingData

#: ``progress(stage, fraction)`` as engines report training progress.
Progress = Callable[[str, float], None]


@runtime_checkable
class TrainableEngine(Protocol):
    """An engine that trains locally and saves/loads itself to/from a directory."""

    name: str
    version: str

    @classmethod
    def train(
        cls, data: TrainingData, config: Any = None, progress: Progress | None = None
    ) -> TrainableEngine:
        """Train a new model on ``data``."""
        ...

    def save(self, directory: Path) -> None:
        """Write the model into the existing ``directory``."""
        ...

    @classmethod
    def load(cls, directory: Path) -> TrainableEngine:
        """Read a model saved by ``save``."""
        ...

    def parse_sync(self, text: str) -> ParseResult:
        """Parse one message (blocking, CPU only)."""
        ...

    async def parse(self, text: str) -> ParseResult:
        """Parse one message."""
        ...


_CLASSES: dict[str, type[Any]] = {}


def register_engine_class(name: str, cls: type[Any]) -> None:
    """Make ``cls`` loadable from artifacts whose metadata says ``engine: name``."""
    _CLASSES[name] = cls


def engine_class(name: str = "builtin") -> type[Any]:
    """The engine class called ``name`` (``builtin`` is imported on first use)."""
    if name not in _CLASSES and name == "builtin":
        try:
            from skills.nlu.builtin.engine import BuiltinEngine
        except ImportError as exc:
            raise ModelArtifactError(f"the built-in NLU engine cannot be imported: {exc}") from exc
        _CLASSES["builtin"] = BuiltinEngine
    try:
        return _CLASSES[name]
    except KeyError:
        raise ModelArtifactError(
            f"unknown NLU engine {name!r} (known: {sorted({'builtin', *_CLASSES})})"
        ) from None


def config_model(cls: type[Any]) -> type[Any] | None:
    """The pydantic config class ``cls.train`` takes (``BuiltinConfig`` for the built-in)."""
    found = getattr(cls, "config_class", None)
    if found is not None:
        return found
    if getattr(cls, "name", None) == "builtin":
        try:
            from skills.nlu.builtin.engine import BuiltinConfig
        except ImportError:
            return None
        return BuiltinConfig
    return None
