"""A whole Rasa project folder: domain, config and every training-data file under ``data/``.

Data files are classified by their top-level keys, like Rasa does: a file may hold ``nlu``,
``stories``, ``rules`` and ``responses`` (retrieval-intent responses) at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from skills.nlu.data.nlu_file import (
    NLUSection,
    SourceLine,
    load_csv_section,
    parse_nlu_section,
)
from skills.nlu.data.stories import Story, _plain, parse_story_section
from skills.nlu.data.yamlio import key_line, read_yaml, type_name
from skills.nlu.domain import DOMAIN_KEYS, Domain, load_domain, parse_domain
from skills.nlu.errors import TrainingDataError
from skills.nlu.types import TrainingData

_DATA_KEYS = frozenset({"version", "nlu", "stories", "rules", "responses", "metadata"})
_YAML_SUFFIXES = (".yml", ".yaml")


class RasaProject(BaseModel):
    """Everything read from a Rasa project folder."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    root: Path
    domain: Domain
    nlu: TrainingData = Field(default_factory=TrainingData)
    #: where each example of ``nlu.examples`` was read from (same order)
    example_origins: list[SourceLine] = Field(default_factory=list)
    intent_lines: dict[str, SourceLine] = Field(default_factory=dict)
    stories: list[Story] = Field(default_factory=list)
    rules: list[Story] = Field(default_factory=list)
    config: dict[str, Any] | None = None
    config_path: Path | None = None
    data_files: list[Path] = Field(default_factory=list)
    #: files under the data folder that were skipped, with why
    skipped_files: list[str] = Field(default_factory=list)


class DataFiles(BaseModel):
    """The content of a set of training-data files (no domain)."""

    nlu: TrainingData = Field(default_factory=TrainingData)
    example_origins: list[SourceLine] = Field(default_factory=list)
    intent_lines: dict[str, SourceLine] = Field(default_factory=dict)
    stories: list[Story] = Field(default_factory=list)
    rules: list[Story] = Field(default_factory=list)
    responses_domain: Domain = Field(default_factory=Domain)
    files: list[Path] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)

    def add_nlu(self, section: NLUSection) -> None:
        """Merge one file's NLU section."""
        self.nlu = self.nlu.merge(section.data)
        self.example_origins.extend(section.origins)
        for name, where in section.intent_lines.items():
            self.intent_lines.setdefault(name, where)


def _expand(paths: Iterable[Path | str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in (*_YAML_SUFFIXES, ".csv")
                )
            )
        elif path.is_file():
            files.append(path)
        else:
            raise TrainingDataError("no such file or folder", path)
    return files


def load_data_files(paths: Iterable[Path | str]) -> DataFiles:
    """Read Rasa YAML files (and ``text,intent`` CSVs) from files and folders (recursively)."""
    out = DataFiles()
    for path in _expand(paths):
        if path.suffix.lower() == ".csv":
            out.add_nlu(load_csv_section(path))
            out.files.append(path)
            continue
        if path.suffix.lower() not in _YAML_SUFFIXES:
            out.skipped.append(f"{path}: not a .yml/.yaml/.csv file")
            continue
        doc = read_yaml(path)
        if doc is None:
            out.skipped.append(f"{path}: empty file")
            continue
        if not isinstance(doc, dict):
            raise TrainingDataError(
                f"a training-data file must be a mapping, got {type_name(doc)}", path, 1
            )
        keys = set(doc)
        if not keys & {"nlu", "stories", "rules", "responses"}:
            if keys & DOMAIN_KEYS - {"version"}:
                out.skipped.append(f"{path}: a domain file inside the data folder")
            else:
                out.skipped.append(f"{path}: no `nlu`, `stories`, `rules` or `responses` key")
            continue
        unknown = keys - _DATA_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise TrainingDataError(
                f"unknown top-level key {key!r} in a training-data file "
                f"(expected some of {sorted(_DATA_KEYS)})",
                path,
                key_line(doc, key),
            )
        out.files.append(path)
        if "nlu" in doc:
            out.add_nlu(parse_nlu_section(doc["nlu"], path, key_line(doc, "nlu")))
        if "stories" in doc:
            out.stories.extend(
                parse_story_section(doc["stories"], "story", path, key_line(doc, "stories"))
            )
        if "rules" in doc:
            out.rules.extend(
                parse_story_section(doc["rules"], "rule", path, key_line(doc, "rules"))
            )
        if "responses" in doc:
            part = parse_domain({"responses": doc["responses"]}, path)
            out.responses_domain = out.responses_domain.merge(part)
    return out


def load_training_data(paths: Iterable[Path | str]) -> TrainingData:
    """Just the NLU training data of some files/folders (what ``frontdoor train`` learns from)."""
    data = load_data_files(paths)
    if not data.nlu.examples:
        raise TrainingDataError(
            "no NLU examples found (expected `nlu:` YAML files or text,intent CSVs)",
            ", ".join(str(p) for p in paths),
        )
    return data.nlu


def load_config(path: Path) -> dict[str, Any]:
    """Read ``config.yml`` as a plain mapping (language, pipeline, policies, ...)."""
    doc = read_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise TrainingDataError(f"a config file must be a mapping, got {type_name(doc)}", path, 1)
    return _plain(doc)


def load_project(
    folder: Path | str = ".",
    *,
    domain: Path | str | None = None,
    data: Path | str | Iterable[Path | str] | None = None,
    config: Path | str | None = None,
) -> RasaProject:
    """Load a Rasa project: ``domain.yml`` (or ``domain/``), ``config.yml`` and ``data/``.

    Relative ``domain``/``data``/``config`` paths are taken relative to ``folder``. A missing
    config file is allowed (``config`` is then ``None``); a missing domain is an error.
    """
    root = Path(folder)
    if domain is None:
        domain_path = root / "domain.yml"
        if not domain_path.exists() and (root / "domain").is_dir():
            domain_path = root / "domain"
        if not domain_path.exists() and (root / "domain.yaml").exists():
            domain_path = root / "domain.yaml"
    else:
        domain_path = root / domain
    dom = load_domain(domain_path)
    data_paths = ["data"] if data is None else data
    if isinstance(data_paths, str | Path):
        data_paths = [data_paths]
    files = load_data_files([root / p for p in data_paths])
    dom = dom.merge(files.responses_domain)
    config_path = root / (config if config is not None else "config.yml")
    cfg: dict[str, Any] | None = None
    if config_path.exists():
        cfg = load_config(config_path)
    elif config is not None:
        raise TrainingDataError("config file not found", config_path)
    return RasaProject(
        root=root,
        domain=dom,
        nlu=files.nlu,
        example_origins=files.example_origins,
        intent_lines=files.intent_lines,
        stories=files.stories,
        rules=files.rules,
        config=cfg,
        config_path=config_path if cfg is not None else None,
        data_files=files.files,
        skipped_files=files.skipped,
    )
