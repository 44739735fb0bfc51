"""YAML reading that remembers line numbers, so every error can name the file and the line.

Mappings load as ``LineDict``, sequences as ``LineList`` and strings as ``LineStr``: plain
``dict``/``list``/``str`` subclasses carrying the 1-based ``line`` where they start (and, for
mappings, the line of each key). Duplicate keys are an error, not a silent overwrite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from skills.nlu.errors import TrainingDataError

try:  # the C loader keeps node marks too and is much faster
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Base = yaml.SafeLoader


class LineStr(str):
    """A string from a YAML file with the line it starts on (``block`` for ``|``/``>``)."""

    line: int = 0
    block: bool = False


class LineList(list[Any]):
    """A YAML sequence with the line it starts on."""

    line: int = 0


class LineDict(dict[str, Any]):
    """A YAML mapping with the line it starts on and the line of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """Line of ``key`` (the mapping's own line when the key is absent)."""
        return self.key_lines.get(key, self.line)


class _LineLoader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader building the Line* containers."""


def _construct_str(loader: yaml.SafeLoader, node: ScalarNode) -> LineStr:
    value = LineStr(loader.construct_scalar(node))
    value.line = node.start_mark.line + 1
    value.block = node.style in ("|", ">")
    return value


def _construct_seq(loader: yaml.SafeLoader, node: SequenceNode) -> LineList:
    value = LineList(loader.construct_object(child, deep=True) for child in node.value)
    value.line = node.start_mark.line + 1
    return value


def _construct_map(loader: yaml.SafeLoader, node: MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    value = LineDict()
    value.line = node.start_mark.line + 1
    value.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool) or key is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported mapping key {key!r}", key_node.start_mark
            )
        key = str(key)
        if key in value:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {value.key_lines[key]})",
                key_node.start_mark,
            )
        value[key] = loader.construct_object(value_node, deep=True)
        value.key_lines[key] = line
    return value


_LineLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def parse_yaml(text: str, path: Path | str) -> Any:
    """Parse YAML text; a syntax error becomes a ``TrainingDataError`` with file and line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}, {problem}"
        raise TrainingDataError(f"invalid YAML: {problem}", path, line) from exc
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"invalid YAML: {exc}", path) from exc


def read_yaml(path: Path) -> Any:
    """Read and parse one YAML file (``None`` for an empty file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise TrainingDataError("file not found", path) from exc
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"not UTF-8 text ({exc.reason})", path) from exc
    except OSError as exc:
        raise TrainingDataError(f"cannot read file: {exc.strerror}", path) from exc
    return parse_yaml(text, path)


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a loaded YAML value starts on, when known."""
    line = getattr(value, "line", 0)
    return line or default


def key_line(mapping: Any, key: str) -> int | None:
    """Line of ``key`` in a loaded mapping (``None`` when unknown)."""
    if isinstance(mapping, LineDict):
        return mapping.line_of(key)
    return None


def type_name(value: Any) -> str:
    """A YAML-ish name of a value's type for error messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    return f"a {type(value).__name__}"
