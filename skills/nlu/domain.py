"""The Rasa 3.x domain (``domain.yml`` or a ``domain/`` folder) as pydantic models.

``load_domain`` reads one file, a folder of files, or a list of both, and merges them the way
Rasa does. Every error names the file and the line (``TrainingDataError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skills.nlu.data.yamlio import key_line, line_of, read_yaml, type_name
from skills.nlu.errors import TrainingDataError

#: Slot types Rasa ships; anything else must be a dotted path to a custom slot class.
BUILTIN_SLOT_TYPES = frozenset({"text", "bool", "categorical", "float", "list", "any"})
#: Keys a domain file may have at top level.
DOMAIN_KEYS = frozenset(
    {
        "version",
        "intents",
        "entities",
        "slots",
        "forms",
        "responses",
        "actions",
        "session_config",
        "config",
        "e2e_actions",
    }
)
#: Keys a response variation may carry (content keys first).
_RESPONSE_CONTENT_KEYS = frozenset(
    {"text", "image", "buttons", "custom", "attachment", "quick_replies", "elements"}
)


class IntentSpec(BaseModel):
    """An intent of the domain, with the entities it uses."""

    model_config = ConfigDict(extra="allow")

    name: str
    use_entities: bool | list[str] = True
    ignore_entities: list[str] = Field(default_factory=list)
    is_retrieval_intent: bool = False


class EntitySpec(BaseModel):
    """An entity of the domain with its declared roles and groups."""

    model_config = ConfigDict(extra="allow")

    name: str
    roles: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    influence_conversation: bool | None = None


class SlotMapping(BaseModel):
    """Where a slot's value comes from (``from_entity``, ``from_text``, ``from_intent``, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str
    entity: str | None = None
    intent: str | list[str] | None = None
    not_intent: str | list[str] | None = None
    role: str | None = None
    group: str | None = None
    value: Any = None
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    action: str | None = None


class SlotSpec(BaseModel):
    """A slot: its type, allowed values and mappings."""

    model_config = ConfigDict(extra="allow")

    name: str
    type: str
    values: list[str] = Field(default_factory=list)
    min_value: float | None = None
    max_value: float | None = None
    initial_value: Any = None
    influence_conversation: bool = True
    mappings: list[SlotMapping] = Field(default_factory=list)


class FormSpec(BaseModel):
    """A form: the slots it asks for, in order."""

    model_config = ConfigDict(extra="allow")

    name: str
    required_slots: list[str] = Field(default_factory=list)
    ignored_intents: list[str] = Field(default_factory=list)


class Button(BaseModel):
    """A response button: a title shown and a payload sent back (``/intent{...}`` or text)."""

    model_config = ConfigDict(extra="allow")

    title: str
    payload: str = ""


class ResponseVariation(BaseModel):
    """One variation of a response (Rasa picks one at random, honouring conditions)."""

    model_config = ConfigDict(extra="allow")

    text: str | None = None
    image: str | None = None
    buttons: list[Button] = Field(default_factory=list)
    custom: dict[str, Any] | None = None
    channel: str | None = None
    condition: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class SessionConfig(BaseModel):
    """Session settings (minutes; 0 means sessions never expire)."""

    session_expiration_time: float = 60
    carry_over_slots_to_new_session: bool = True


class Domain(BaseModel):
    """The whole domain: what the assistant knows about (intents, entities, slots, ...)."""

    version: str | None = None
    intents: list[IntentSpec] = Field(default_factory=list)
    entities: list[EntitySpec] = Field(default_factory=list)
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    forms: dict[str, FormSpec] = Field(default_factory=dict)
    responses: dict[str, list[ResponseVariation]] = Field(default_factory=dict)
    actions: list[str] = Field(default_factory=list)
    session_config: SessionConfig = Field(default_factory=SessionConfig)
    files: list[str] = Field(default_factory=list, description="files the domain was read from")
    duplicates: list[str] = Field(
        default_factory=list, description="names declared more than once across domain files"
    )

    @property
    def intent_names(self) -> list[str]:
        """Intent names, in declaration order."""
        return [i.name for i in self.intents]

    @property
    def entity_names(self) -> list[str]:
        """Entity names, in declaration order."""
        return [e.name for e in self.entities]

    def intent(self, name: str) -> IntentSpec | None:
        """The intent called ``name``, if declared."""
        return next((i for i in self.intents if i.name == name), None)

    def entity(self, name: str) -> EntitySpec | None:
        """The entity called ``name``, if declared."""
        return next((e for e in self.entities if e.name == name), None)

    def merge(self, other: Domain) -> Domain:
        """Union of two domains; the first declaration of a name wins, repeats are recorded."""
        dups = [*self.duplicates, *other.duplicates]

        def union_list(mine: Sequence[Any], theirs: Sequence[Any], kind: str) -> list[Any]:
            names = {getattr(x, "name", x) for x in mine}
            merged = list(mine)
            for item in theirs:
                name = getattr(item, "name", item)
                if name in names:
                    dups.append(f"{kind} {name!r}")
                else:
                    names.add(name)
                    merged.append(item)
            return merged

        def union_dict(mine: dict[str, Any], theirs: dict[str, Any], kind: str) -> dict[str, Any]:
            merged = dict(mine)
            for name, item in theirs.items():
                if name in merged:
                    dups.append(f"{kind} {name!r}")
                else:
                    merged[name] = item
            return merged

        return Domain(
            version=self.version or other.version,
            intents=union_list(self.intents, other.intents, "intent"),
            entities=union_list(self.entities, other.entities, "entity"),
            slots=union_dict(self.slots, other.slots, "slot"),
            forms=union_dict(self.forms, other.forms, "form"),
            responses=union_dict(self.responses, other.responses, "response"),
            actions=union_list(self.actions, other.actions, "action"),
            session_config=self.session_config
            if "session_config" in self.model_fields_set
            else other.session_config,
            files=[*self.files, *other.files],
            duplicates=dups,
        )


# --- parsing -----------------------------------------------------------------------------------


def _fail(path: Path, where: Any, message: str, default_line: int | None = None) -> None:
    raise TrainingDataError(message, path, line_of(where, default_line))


def _build(model: type[BaseModel], data: dict[str, Any], path: Path, where: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise TrainingDataError(
            f"{what}: {loc + ': ' if loc else ''}{first['msg']}", path, line_of(where)
        ) from exc


def _name_and_body(item: Any, path: Path, what: str, parent: Any) -> tuple[str, dict[str, Any]]:
    """``- name`` or ``- name: {options}`` -> (name, options)."""
    if isinstance(item, str):
        if not item.strip():
            _fail(path, item, f"empty {what} name", line_of(parent))
        return item.strip(), {}
    if isinstance(item, dict) and len(item) == 1:
        name, body = next(iter(item.items()))
        if body is None:
            body = {}
        if not isinstance(body, dict):
            _fail(path, item, f"{what} {name!r}: options must be a mapping, got {type_name(body)}")
        return str(name), dict(body)
    _fail(path, item if line_of(item) else parent, f"a {what} must be a name or `name: {{...}}`")
    raise AssertionError  # unreachable


def _as_list(value: Any, path: Path, where: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(path, where, f"`{key}` must be a list, got {type_name(value)}")
    return value


def _as_map(value: Any, path: Path, where: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(path, where, f"`{key}` must be a mapping, got {type_name(value)}")
    return value


def parse_domain(data: Any, path: Path) -> Domain:
    """Build a ``Domain`` from one parsed domain document (``LineDict``)."""
    if data is None:
        return Domain(files=[str(path)])
    if not isinstance(data, dict):
        _fail(path, data, f"a domain file must be a mapping, got {type_name(data)}", 1)
    doc: dict[str, Any] = data

    def at(key: str) -> Any:
        value = doc.get(key)
        return value if line_of(value) else _Line(key_line(doc, key))

    intents: list[IntentSpec] = []
    for item in _as_list(doc.get("intents"), path, at("intents"), "intents"):
        name, body = _name_and_body(item, path, "intent", at("intents"))
        intents.append(_build(IntentSpec, {"name": name, **body}, path, item, f"intent {name!r}"))

    entities: list[EntitySpec] = []
    for item in _as_list(doc.get("entities"), path, at("entities"), "entities"):
        name, body = _name_and_body(item, path, "entity", at("entities"))
        entities.append(_build(EntitySpec, {"name": name, **body}, path, item, f"entity {name!r}"))

    slots: dict[str, SlotSpec] = {}
    for name, body in _as_map(doc.get("slots"), path, at("slots"), "slots").items():
        where = body if line_of(body) else _Line(key_line(doc["slots"], name))
        if not isinstance(body, dict):
            _fail(path, where, f"slot {name!r} must be a mapping, got {type_name(body)}")
        if "type" not in body:
            _fail(path, where, f"slot {name!r} has no `type`")
        slot = _build(SlotSpec, {"name": name, **body}, path, where, f"slot {name!r}")
        if slot.type not in BUILTIN_SLOT_TYPES and "." not in slot.type:
            _fail(
                path,
                where,
                f"slot {name!r} has unknown type {slot.type!r} "
                f"(one of {sorted(BUILTIN_SLOT_TYPES)} or a custom class path)",
            )
        if slot.type == "categorical" and not slot.values:
            _fail(path, where, f"categorical slot {name!r} lists no `values`")
        slots[name] = slot

    forms: dict[str, FormSpec] = {}
    for name, body in _as_map(doc.get("forms"), path, at("forms"), "forms").items():
        where = body if line_of(body) else _Line(key_line(doc["forms"], name))
        body = {} if body is None else body
        if not isinstance(body, dict):
            _fail(path, where, f"form {name!r} must be a mapping, got {type_name(body)}")
        body = dict(body)
        required = body.get("required_slots")
        if isinstance(required, dict):  # Rasa 2: slot -> mappings
            body["required_slots"] = list(required)
        elif required is not None and not isinstance(required, list):
            _fail(path, where, f"form {name!r}: `required_slots` must be a list")
        forms[name] = _build(FormSpec, {"name": name, **body}, path, where, f"form {name!r}")

    responses: dict[str, list[ResponseVariation]] = {}
    for name, variations in _as_map(
        doc.get("responses"), path, at("responses"), "responses"
    ).items():
        where = variations if line_of(variations) else _Line(key_line(doc["responses"], name))
        if not isinstance(variations, list) or not variations:
            _fail(path, where, f"response {name!r} must be a non-empty list of variations")
        parsed: list[ResponseVariation] = []
        for variation in variations:
            if not isinstance(variation, dict):
                _fail(
                    path,
                    variation if line_of(variation) else where,
                    f"response {name!r}: a variation must be a mapping "
                    f"(e.g. `- text: ...`), got {type_name(variation)}",
                )
            if not _RESPONSE_CONTENT_KEYS & set(variation):
                _fail(
                    path,
                    variation,
                    f"response {name!r}: a variation needs one of {sorted(_RESPONSE_CONTENT_KEYS)}",
                )
            parsed.append(
                _build(ResponseVariation, variation, path, variation, f"response {name!r}")
            )
        responses[name] = parsed

    actions: list[str] = []
    for item in _as_list(doc.get("actions"), path, at("actions"), "actions"):
        name, _body = _name_and_body(item, path, "action", at("actions"))
        actions.append(name)

    session = doc.get("session_config") or {}
    if not isinstance(session, dict):
        _fail(path, at("session_config"), "`session_config` must be a mapping")
    session_config = _build(
        SessionConfig, dict(session), path, at("session_config"), "session_config"
    )

    version = doc.get("version")
    extra: dict[str, Any] = {"session_config": session_config} if "session_config" in doc else {}
    return Domain(
        version=None if version is None else str(version),
        intents=intents,
        entities=entities,
        slots=slots,
        forms=forms,
        responses=responses,
        actions=actions,
        files=[str(path)],
        **extra,
    )


class _Line:
    """A stand-in carrying only a line number (for values without one, e.g. ``null``)."""

    def __init__(self, line: int | None) -> None:
        self.line = line or 0


def _domain_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    if not path.exists():
        raise TrainingDataError("domain file not found", path)
    return [path]


def load_domain(paths: Path | str | Iterable[Path | str]) -> Domain:
    """Load a domain from a file, a folder of domain files, or a list of both (merged)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    domain = Domain()
    found = False
    for raw in paths:
        for file in _domain_files(Path(raw)):
            found = True
            domain = domain.merge(parse_domain(read_yaml(file), file))
    if not found:
        raise TrainingDataError("no domain file found", ", ".join(str(p) for p in paths))
    return domain
