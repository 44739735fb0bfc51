"""Expert bots: a name, a description, a knowledge folder and an optional persona.

The experts file (``FRONTDOOR_EXPERTS_FILE``) is YAML::

    experts:
      - name: ops                      # lower-case, used as expert_ask's `expert`
        description: Runbooks for on-call operations
        knowledge: knowledge/ops       # folder of .md/.txt, relative to this file
        persona: You are a calm SRE.   # optional system prompt (LLM mode)
        min_similarity: 0.3            # optional, overrides the retriever's default

Without a file the built-in experts of ``backend_services/generative/experts.yml`` are used
(``ops``, ``security``, ``network``, ``cloud``, ``billing``; knowledge under ``knowledge/``).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.errors import FrontdoorError


class ExpertsConfigError(FrontdoorError):
    """The experts file is missing, not YAML, or not valid."""


class ExpertConfig(BaseModel):
    """One expert."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    description: str = Field(min_length=1, max_length=300)
    knowledge: Path
    persona: str | None = Field(default=None, max_length=4000)
    min_similarity: float | None = Field(default=None, ge=-1, le=1)


class ExpertsFile(BaseModel):
    """The whole experts file."""

    model_config = ConfigDict(extra="forbid")

    experts: list[ExpertConfig] = Field(min_length=1)


#: The built-in experts (ops, security, network, cloud, billing) and their knowledge folders.
DEFAULT_EXPERTS_FILE = Path(__file__).resolve().parent / "experts.yml"


def load_experts(path: Path | None) -> list[ExpertConfig]:
    """The experts of ``path`` (knowledge folders resolved relative to it), or the built-ins."""
    path = path or DEFAULT_EXPERTS_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExpertsConfigError(f"cannot read experts file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ExpertsConfigError(f"experts file {path} is not valid YAML: {exc}") from exc
    try:
        parsed = ExpertsFile.model_validate(raw)
    except ValidationError as exc:
        raise ExpertsConfigError(f"experts file {path} is not valid: {exc}") from exc
    names = [e.name for e in parsed.experts]
    if len(set(names)) != len(names):
        raise ExpertsConfigError(f"experts file {path} names an expert twice")
    base = path.resolve().parent
    return [
        e.model_copy(update={"knowledge": (base / e.knowledge).resolve()})
        if not e.knowledge.is_absolute()
        else e
        for e in parsed.experts
    ]
