"""Consistency checks of a Rasa project, like ``rasa data validate``.

``validate_project`` returns every problem as an ``Issue`` (error or warning) with where it is;
nothing is printed here (``frontdoor data validate`` renders the report).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Literal

from pydantic import BaseModel, Field

from skills.nlu.data.project import RasaProject
from skills.nlu.data.stories import Story

#: Intents Rasa adds to every domain; they need no examples and no declaration.
DEFAULT_INTENTS = frozenset({"restart", "back", "out_of_scope", "session_start", "nlu_fallback"})
#: Actions Rasa provides; stories may use them without declaring them.
DEFAULT_ACTIONS = frozenset(
    {
        "action_listen",
        "action_restart",
        "action_session_start",
        "action_default_fallback",
        "action_deactivate_loop",
        "action_revert_fallback_events",
        "action_default_ask_affirmation",
        "action_default_ask_rephrase",
        "action_two_stage_fallback",
        "action_unlikely_intent",
        "action_back",
        "action_extract_slots",
        "...",
    }
)
#: Responses Rasa's default actions use (never reported as unused).
_IMPLICIT_RESPONSES = frozenset({"utter_default", "utter_ask_rephrase", "utter_ask_affirmation"})
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
#: Minimum examples per intent before a warning.
MIN_EXAMPLES = 2


class Issue(BaseModel):
    """One finding: an error (the project is broken) or a warning (probably a mistake)."""

    level: Literal["error", "warning"]
    code: str
    message: str
    location: str | None = None


class ValidationReport(BaseModel):
    """All findings of a validation run."""

    issues: list[Issue] = Field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        """Findings that make the project invalid."""
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        """Findings that are probably mistakes."""
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def add(
        self, level: Literal["error", "warning"], code: str, message: str, where: object = None
    ) -> None:
        """Record one finding."""
        self.issues.append(
            Issue(
                level=level,
                code=code,
                message=message,
                location=None if where is None else str(where),
            )
        )


def _base(intent: str) -> str:
    """Retrieval intents (``chitchat/ask_name``) belong to their base intent (``chitchat``)."""
    return intent.split("/", 1)[0]


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _story_where(story: Story) -> str:
    where = f"{story.source}:{story.line}" if story.line else story.source
    return f"{where} ({story.kind} {story.name!r})"


def _check_nlu(project: RasaProject, report: ValidationReport) -> None:
    domain = project.domain
    declared = {_base(i) for i in domain.intent_names}
    data = project.nlu
    origins = project.example_origins
    per_intent: dict[str, int] = defaultdict(int)
    for example in data.examples:
        per_intent[example.intent] += 1

    if not data.examples:
        report.add("warning", "no_nlu_data", "no NLU training examples found in the data folder")
    for intent in sorted(per_intent):
        where = project.intent_lines.get(intent)
        if _base(intent) not in declared:
            report.add(
                "error",
                "intent_not_in_domain",
                f"intent {intent!r} is in the NLU training data but not listed in the domain",
                where,
            )
        if per_intent[intent] < MIN_EXAMPLES:
            report.add(
                "warning",
                "few_examples",
                f"intent {intent!r} has only {per_intent[intent]} example(s); "
                f"give it at least {MIN_EXAMPLES}",
                where,
            )
    trained_bases = {_base(i) for i in per_intent}
    for intent in domain.intent_names:
        if intent not in trained_bases and intent not in DEFAULT_INTENTS:
            report.add(
                "warning",
                "intent_without_examples",
                f"intent {intent!r} is listed in the domain but has no NLU training examples",
                domain.files[0] if domain.files else None,
            )

    # The same text under several intents confuses every classifier: an error.
    seen: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(data.examples):
        seen[_normalise(example.text)].append(index)
    for indexes in seen.values():
        intents = sorted({data.examples[i].intent for i in indexes})
        text = data.examples[indexes[0]].text
        places = ", ".join(str(origins[i]) for i in indexes if i < len(origins))
        if len(intents) > 1:
            report.add(
                "error",
                "duplicate_example",
                f"example {text!r} appears under several intents: {', '.join(intents)} "
                f"(at {places})",
                origins[indexes[0]] if origins else None,
            )
        elif len(indexes) > 1:
            report.add(
                "warning",
                "repeated_example",
                f"example {text!r} is repeated {len(indexes)} times in intent {intents[0]!r} "
                f"(at {places})",
                origins[indexes[1]] if len(origins) > indexes[1] else None,
            )

    # Entities.
    entity_specs = {e.name: e for e in domain.entities}
    used_entities: set[str] = set()
    reported: set[tuple[str, str]] = set()
    for index, example in enumerate(data.examples):
        where = origins[index] if index < len(origins) else None
        for span in example.entities:
            used_entities.add(span.entity)
            spec = entity_specs.get(span.entity)
            if spec is None:
                if ("entity", span.entity) not in reported:
                    reported.add(("entity", span.entity))
                    report.add(
                        "error",
                        "entity_not_in_domain",
                        f"entity {span.entity!r} is annotated in the training data but not "
                        "listed in the domain",
                        where,
                    )
                continue
            for kind, value, declared_values in (
                ("role", span.role, spec.roles),
                ("group", span.group, spec.groups),
            ):
                key = (f"{kind}:{span.entity}", str(value))
                if value is not None and value not in declared_values and key not in reported:
                    reported.add(key)
                    report.add(
                        "warning",
                        f"entity_{kind}_not_in_domain",
                        f"entity {span.entity!r} is annotated with {kind} {value!r}, which the "
                        f"domain does not declare (declared: {declared_values or 'none'})",
                        where,
                    )
    feature_names = {r.name for r in data.regexes} | set(data.lookups)
    for name in entity_specs:
        if name not in used_entities and name not in feature_names:
            report.add(
                "warning",
                "unused_entity",
                f"entity {name!r} is listed in the domain but never annotated in the NLU data "
                "(and has no regex or lookup table)",
                domain.files[0] if domain.files else None,
            )
    for intent_spec in domain.intents:
        if isinstance(intent_spec.use_entities, list):
            for name in [*intent_spec.use_entities, *intent_spec.ignore_entities]:
                if name not in entity_specs:
                    report.add(
                        "warning",
                        "intent_uses_unknown_entity",
                        f"intent {intent_spec.name!r} uses/ignores entity {name!r}, "
                        "which the domain does not list",
                    )
    for name, values in data.lookups.items():
        if not values:
            report.add("warning", "empty_lookup", f"lookup table {name!r} has no values")


def _check_domain(project: RasaProject, report: ValidationReport) -> None:
    domain = project.domain
    where = domain.files[0] if domain.files else None
    intents = {_base(i) for i in domain.intent_names} | DEFAULT_INTENTS
    entities = set(domain.entity_names)
    for dup in domain.duplicates:
        report.add("warning", "domain_duplicate", f"{dup} is declared more than once", where)
    for form in domain.forms.values():
        for slot in form.required_slots:
            if slot not in domain.slots:
                report.add(
                    "error",
                    "form_slot_not_in_domain",
                    f"form {form.name!r} requires slot {slot!r}, which is not in the domain slots",
                    where,
                )
                continue
            asks = {f"utter_ask_{slot}", f"utter_ask_{form.name}_{slot}"}
            actions = {f"action_ask_{slot}", f"action_ask_{form.name}_{slot}"}
            if not asks & set(domain.responses) and not actions & set(domain.actions):
                report.add(
                    "warning",
                    "form_slot_without_question",
                    f"form {form.name!r} requires slot {slot!r} but there is no response "
                    f"'utter_ask_{slot}' (nor an action 'action_ask_{slot}') to ask for it",
                    where,
                )
        for intent in form.ignored_intents:
            if _base(intent) not in intents:
                report.add(
                    "error",
                    "form_intent_not_in_domain",
                    f"form {form.name!r} ignores intent {intent!r}, which is not in the domain",
                    where,
                )
    for slot_spec in domain.slots.values():
        for mapping in slot_spec.mappings:
            if mapping.entity is not None and mapping.entity not in entities:
                report.add(
                    "error",
                    "slot_mapping_entity_not_in_domain",
                    f"slot {slot_spec.name!r} maps from entity {mapping.entity!r}, which is not in "
                    "the domain",
                    where,
                )
            for field in (mapping.intent, mapping.not_intent):
                for intent in [field] if isinstance(field, str) else field or []:
                    if _base(intent) not in intents:
                        report.add(
                            "error",
                            "slot_mapping_intent_not_in_domain",
                            f"slot {slot_spec.name!r} has a mapping on intent {intent!r}, which is "
                            "not in the domain",
                            where,
                        )
            for condition in mapping.conditions:
                loop = condition.get("active_loop")
                if isinstance(loop, str) and loop not in domain.forms:
                    report.add(
                        "error",
                        "slot_mapping_unknown_form",
                        f"slot {slot_spec.name!r} has a mapping condition on form {loop!r}, "
                        "which is not in the domain forms",
                        where,
                    )
    for name, variations in domain.responses.items():
        for variation in variations:
            for placeholder in _PLACEHOLDER.findall(variation.text or ""):
                if placeholder not in domain.slots:
                    report.add(
                        "warning",
                        "response_unknown_slot",
                        f"response {name!r} fills {{{placeholder}}}, which is not a slot",
                        where,
                    )
            for button in variation.buttons:
                if button.payload.startswith("/"):
                    intent = re.split(r"[{@]", button.payload[1:], maxsplit=1)[0]
                    if _base(intent) not in intents:
                        report.add(
                            "warning",
                            "button_unknown_intent",
                            f"response {name!r} has a button {button.title!r} sending intent "
                            f"{intent!r}, which is not in the domain",
                            where,
                        )
                    rest = button.payload[1 + len(intent) :]
                    if rest.startswith("{"):
                        try:
                            json.loads(rest)
                        except json.JSONDecodeError:
                            report.add(
                                "error",
                                "button_bad_payload",
                                f"response {name!r}: button {button.title!r} payload "
                                f"{button.payload!r} has invalid JSON entities",
                                where,
                            )


def _check_stories(project: RasaProject, report: ValidationReport) -> None:
    domain = project.domain
    intents = {_base(i) for i in domain.intent_names} | DEFAULT_INTENTS
    responses = set(domain.responses)
    response_bases = {_base(r) for r in responses}
    known_actions = set(domain.actions) | set(domain.forms) | responses | DEFAULT_ACTIONS
    entities = set(domain.entity_names)
    slots = set(domain.slots) | {"requested_slot"}
    used_intents: set[str] = set()
    used_actions: set[str] = set()
    for story in [*project.stories, *project.rules]:
        where = _story_where(story)
        for intent in story.intents:
            used_intents.add(_base(intent))
            if _base(intent) not in intents:
                report.add(
                    "error",
                    "story_intent_not_in_domain",
                    f"intent {intent!r} is used in a {story.kind} but not listed in the domain",
                    where,
                )
        for action in story.actions:
            used_actions.add(action)
            if action in known_actions or action in response_bases:
                continue
            if action.startswith("utter_"):
                report.add(
                    "error",
                    "response_not_in_domain",
                    f"response {action!r} is used in a {story.kind} but not defined in the "
                    "domain responses",
                    where,
                )
            else:
                report.add(
                    "error",
                    "action_not_in_domain",
                    f"action {action!r} is used in a {story.kind} but not listed in the domain "
                    "actions (nor a form or a response)",
                    where,
                )
        for entity in story.entities:
            if entity not in entities:
                report.add(
                    "error",
                    "story_entity_not_in_domain",
                    f"entity {entity!r} is used in a {story.kind} but not listed in the domain",
                    where,
                )
        for slot in story.slots:
            if slot not in slots:
                report.add(
                    "error",
                    "story_slot_not_in_domain",
                    f"slot {slot!r} is set in a {story.kind} but not listed in the domain",
                    where,
                )
        for loop in story.loops:
            if loop not in domain.forms:
                report.add(
                    "error",
                    "story_form_not_in_domain",
                    f"active_loop {loop!r} in a {story.kind} is not a form of the domain",
                    where,
                )
    if not (project.stories or project.rules):
        return
    for intent in domain.intent_names:
        if intent not in used_intents and intent not in DEFAULT_INTENTS:
            report.add(
                "warning",
                "intent_not_in_stories",
                f"intent {intent!r} is not used in any story or rule",
            )
    asked = {f"utter_ask_{slot}" for slot in domain.slots} | {
        f"utter_ask_{form}_{slot}"
        for form, spec in domain.forms.items()
        for slot in spec.required_slots
    }
    used_bases = {_base(a) for a in used_actions}
    for name in sorted(responses):
        if name in used_actions or _base(name) in used_bases:
            continue
        if name in asked or name in _IMPLICIT_RESPONSES:
            continue
        report.add(
            "warning",
            "unused_response",
            f"response {name!r} is not used in any story or rule",
        )


def validate_project(project: RasaProject) -> ValidationReport:
    """Check a loaded project like ``rasa data validate`` and return every finding."""
    report = ValidationReport()
    if project.config is None:
        report.add(
            "warning",
            "no_config",
            "no config.yml found (the built-in engine does not need one; Rasa does)",
        )
    for skipped in project.skipped_files:
        report.add("warning", "skipped_file", f"skipped {skipped}")
    _check_nlu(project, report)
    _check_domain(project, report)
    _check_stories(project, report)
    return report
