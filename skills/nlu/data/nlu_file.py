"""Rasa ``nlu:`` sections (intents with examples, synonyms, regexes, lookup tables) and CSV."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from skills.nlu.data.annotations import AnnotationError, parse_annotated
from skills.nlu.data.yamlio import LineDict, key_line, line_of, read_yaml, type_name
from skills.nlu.errors import TrainingDataError
from skills.nlu.types import Example, RegexFeature, TrainingData

_ITEM_KINDS = ("intent", "synonym", "regex", "lookup")
#: CSV label columns accepted when there is no ``intent`` column.
_INTENT_ALIASES = ("category", "label")


class SourceLine(BaseModel):
    """Where something was read from (for messages such as duplicate examples)."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"


class NLUSection(BaseModel):
    """What one file's ``nlu:`` section holds, with the origin of every example."""

    data: TrainingData
    origins: list[SourceLine]
    #: intents declared in the file (even if they later turn out empty), with their line
    intent_lines: dict[str, SourceLine] = {}


def _block_items(value: Any, path: Path, where: int | None, what: str) -> list[tuple[str, int]]:
    """``examples: |`` block list (or a YAML list) -> [(item text, line)]."""
    if value is None:
        return []
    items: list[tuple[str, int]] = []
    if isinstance(value, str):
        first = line_of(value, where) or 0
        # A ``|`` block starts on the line after its indicator.
        offset = 1 if getattr(value, "block", False) else 0
        for i, raw in enumerate(value.splitlines()):
            line = first + offset + i
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if not stripped.startswith("-"):
                raise TrainingDataError(
                    f"{what}: each line must be a list item starting with '- ', got {stripped!r}",
                    path,
                    line,
                )
            text = stripped[1:].strip()
            if not text:
                raise TrainingDataError(f"{what}: empty list item", path, line)
            items.append((text, line))
        return items
    if isinstance(value, list):
        for item in value:
            line = line_of(item, where) or 0
            if isinstance(item, dict) and "text" in item:  # Rasa 3 `- text: ... metadata: ...`
                item = item["text"]
            if isinstance(item, str | int | float) and not isinstance(item, bool):
                text = str(item).strip()
                if not text:
                    raise TrainingDataError(f"{what}: empty list item", path, line)
                items.append((text, line))
            else:
                raise TrainingDataError(
                    f"{what}: an item must be text, got {type_name(item)}", path, line
                )
        return items
    raise TrainingDataError(
        f"{what}: `examples` must be a `|` block of `- ` lines or a list, got {type_name(value)}",
        path,
        where,
    )


def parse_nlu_section(items: Any, path: Path, section_line: int | None = None) -> NLUSection:
    """Parse the value of a top-level ``nlu:`` key."""
    if items is None:
        return NLUSection(data=TrainingData(), origins=[])
    if not isinstance(items, list):
        raise TrainingDataError(
            f"`nlu` must be a list of items, got {type_name(items)}", path, section_line
        )
    examples: list[Example] = []
    origins: list[SourceLine] = []
    synonyms: dict[str, str] = {}
    regexes: list[RegexFeature] = []
    lookups: dict[str, list[str]] = {}
    intent_lines: dict[str, SourceLine] = {}
    for item in items:
        line = line_of(item, section_line)
        if not isinstance(item, dict):
            raise TrainingDataError(
                f"an `nlu` item must be a mapping with one of {list(_ITEM_KINDS)}, "
                f"got {type_name(item)}",
                path,
                line,
            )
        kinds = [k for k in _ITEM_KINDS if k in item]
        if len(kinds) != 1:
            raise TrainingDataError(
                f"an `nlu` item needs exactly one of {list(_ITEM_KINDS)}, got keys {sorted(item)}",
                path,
                line,
            )
        kind = kinds[0]
        name = item[kind]
        if not isinstance(name, str) or not name.strip():
            raise TrainingDataError(
                f"`{kind}` must be a non-empty name, got {name!r}",
                path,
                item.line_of(kind) if isinstance(item, LineDict) else line,
            )
        name = name.strip()
        if "examples" not in item:
            raise TrainingDataError(f"{kind} {name!r} has no `examples`", path, line)
        ex_line = item.line_of("examples") if isinstance(item, LineDict) else line
        entries = _block_items(item["examples"], path, ex_line, f"{kind} {name!r}")
        if not entries:
            raise TrainingDataError(f"{kind} {name!r} has no examples", path, line)
        if kind == "intent":
            intent_lines.setdefault(name, SourceLine(path=str(path), line=line))
            for raw, ex_line_no in entries:
                try:
                    text, spans = parse_annotated(raw)
                except AnnotationError as exc:
                    raise TrainingDataError(
                        f"intent {name!r}: {exc} in example {raw!r}", path, ex_line_no
                    ) from exc
                if not text.strip():
                    raise TrainingDataError(
                        f"intent {name!r}: example {raw!r} is empty", path, ex_line_no
                    )
                for span in spans:
                    surface = text[span.start : span.end]
                    if span.value != surface:  # Rasa registers annotated values as synonyms
                        synonyms[surface.lower()] = span.value
                examples.append(Example(text=text, intent=name, entities=spans))
                origins.append(SourceLine(path=str(path), line=ex_line_no))
        elif kind == "synonym":
            for value, _ in entries:
                synonyms[value.lower()] = name
        elif kind == "regex":
            for pattern, pattern_line in entries:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise TrainingDataError(
                        f"regex {name!r}: invalid pattern {pattern!r}: {exc}", path, pattern_line
                    ) from exc
            regexes.append(RegexFeature(name=name, patterns=tuple(p for p, _ in entries)))
        else:
            lookups.setdefault(name, []).extend(v for v, _ in entries)
    return NLUSection(
        data=TrainingData(examples=examples, synonyms=synonyms, regexes=regexes, lookups=lookups),
        origins=origins,
        intent_lines=intent_lines,
    )


def load_nlu_file(path: Path | str) -> TrainingData:
    """Load the ``nlu:`` section of one Rasa YAML file (a missing section is an error)."""
    return load_nlu_section(Path(path)).data


def load_nlu_section(path: Path) -> NLUSection:
    """Like ``load_nlu_file`` but also returns where every example came from."""
    doc = read_yaml(path)
    if not isinstance(doc, dict) or "nlu" not in doc:
        raise TrainingDataError("not an NLU file: no top-level `nlu:` key", path, 1)
    return parse_nlu_section(doc["nlu"], path, key_line(doc, "nlu"))


def load_csv(path: Path | str) -> TrainingData:
    """Load a ``text,intent`` CSV (header row required; extra columns are ignored).

    A ``category`` or ``label`` column is accepted in place of ``intent`` (e.g. Banking77).

    Texts may carry Rasa entity annotations (``[Berlin](city)``).
    """
    return load_csv_section(Path(path)).data


def load_csv_section(path: Path) -> NLUSection:
    """Like ``load_csv`` but also returns where every example came from."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise TrainingDataError(f"cannot read file: {exc.strerror}", path) from exc
    examples: list[Example] = []
    origins: list[SourceLine] = []
    synonyms: dict[str, str] = {}
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
        except UnicodeDecodeError as exc:
            raise TrainingDataError("not UTF-8 text", path, 1) from exc
        if "intent" not in header:  # common names of the label column in public data sets
            alias = next((a for a in _INTENT_ALIASES if a in header), None)
            header = ["intent" if h == alias else h for h in header]
        if "text" not in header or "intent" not in header:
            raise TrainingDataError(
                f"a CSV needs a header row with `text` and `intent` columns, got {header}", path, 1
            )
        reader.fieldnames = header
        try:
            for row in reader:
                line = reader.line_num
                text_raw = (row.get("text") or "").strip()
                intent = (row.get("intent") or "").strip()
                if not text_raw and not intent:
                    continue
                if not text_raw or not intent:
                    raise TrainingDataError("a row needs both `text` and `intent`", path, line)
                try:
                    text, spans = parse_annotated(text_raw)
                except AnnotationError as exc:
                    raise TrainingDataError(f"{exc} in {text_raw!r}", path, line) from exc
                for span in spans:
                    if span.value != text[span.start : span.end]:
                        synonyms[text[span.start : span.end].lower()] = span.value
                examples.append(Example(text=text, intent=intent, entities=spans))
                origins.append(SourceLine(path=str(path), line=line))
        except csv.Error as exc:
            raise TrainingDataError(f"invalid CSV: {exc}", path, reader.line_num) from exc
        except UnicodeDecodeError as exc:
            raise TrainingDataError("not UTF-8 text", path, reader.line_num) from exc
    if not examples:
        raise TrainingDataError("the CSV has no examples", path)
    return NLUSection(
        data=TrainingData(examples=examples, synonyms=synonyms), origins=origins, intent_lines={}
    )
