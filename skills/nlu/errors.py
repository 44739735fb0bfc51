"""Errors raised by the NLU layer (all rooted in ``events.errors.FrontdoorError``)."""

from __future__ import annotations

from pathlib import Path

from events.errors import FrontdoorError


class NLUError(FrontdoorError):
    """Root of every NLU error."""


class TrainingDataError(NLUError):
    """A training-data, domain or config file is invalid; names the file and the line."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(f"{where}{message}")


class NLUEngineUnavailable(NLUError):
    """An engine cannot parse right now (Rasa server down, no model published yet, ...)."""


class NLUEngineError(NLUError):
    """An engine answered, but with something we cannot use (bad JSON, unexpected shape)."""


class ModelNotFound(NLUError):
    """A model version (or any model at all) is not in the registry."""


class ModelArtifactError(NLUError):
    """A model artifact is incomplete, corrupted or of an unknown format."""
