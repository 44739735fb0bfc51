"""``SkillRegistry``: loads ``skills.yml``, checks it against the domain, answers lookups.

Every problem found is reported at once, each with the file and line where it is declared
(``SkillDeclarationError``), so a broken declaration never reaches a running bot.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from events import subjects
from events.errors import FrontdoorError
from events.payloads import Button, Reply
from skills.nlu.data.yamlio import line_of, read_yaml
from skills.nlu.domain import Domain, load_domain
from skills.nlu.errors import TrainingDataError
from skills.routing.models import ExpertSpec, Persona, SkillsFile, SkillSpec, SlotRule

#: Intents the dialogue engine handles itself (they must exist in the domain).
CONVERSATION_INTENTS = (
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "cancel",
    "help",
    "out_of_scope",
    "bot_switch",
    "human_handoff",
    "inform",
)

EXPERT_PREFIX = "expert:"
_EXPERT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class SkillDeclarationError(FrontdoorError):
    """``skills.yml`` is invalid or does not match the domain; lists every problem."""

    def __init__(self, problems: list[str], path: Path | str | None = None) -> None:
        self.problems = problems
        self.path = str(path) if path is not None else None
        head = f"{self.path}: " if self.path else ""
        super().__init__(
            f"{head}{len(problems)} problem(s) in the skill declarations:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def _locate(doc: Any, loc: Iterable[Any]) -> int | None:
    """The line of the deepest node of ``doc`` along a pydantic error location."""
    node, line = doc, line_of(doc)
    for part in loc:
        if isinstance(node, dict) and part in node:
            line = node.line_of(part) if hasattr(node, "line_of") else line
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            line = line_of(node, line)
        else:
            break
    return line


def _template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


class _SafeVars(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


class SkillRegistry:
    """The validated skill declarations plus the domain they refer to."""

    def __init__(self, spec: SkillsFile, domain: Domain, *, source: str | None = None) -> None:
        self.spec = spec
        self.domain = domain
        self.source = source
        problems = self._check()
        if problems:
            raise SkillDeclarationError(problems, source)
        self._by_intent = {s.intent: s for s in spec.skills.values()}

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: Path | str | None = None, domain: Domain | Path | str | None = None
    ) -> SkillRegistry:
        """Load ``skills.yml`` (default: the shipped one) against a domain (default: shipped)."""
        from skills.data import DOMAIN_FILE, SKILLS_FILE

        file = Path(path) if path is not None else SKILLS_FILE
        if not isinstance(domain, Domain):
            try:
                domain = load_domain(domain if domain is not None else DOMAIN_FILE)
            except TrainingDataError as exc:
                raise SkillDeclarationError([str(exc)], file) from exc
        if not file.exists():
            raise SkillDeclarationError(["file not found"], file)
        try:
            doc = read_yaml(file)
        except TrainingDataError as exc:
            raise SkillDeclarationError([exc.reason], file) from exc
        return cls.from_data(doc, domain, source=str(file))

    @classmethod
    def from_data(cls, doc: Any, domain: Domain, *, source: str | None = None) -> SkillRegistry:
        """Validate an already parsed document (a mapping) against ``domain``."""
        if not isinstance(doc, dict):
            raise SkillDeclarationError(
                [f"the skills file must be a mapping, got {type(doc).__name__}"], source
            )
        try:
            spec = SkillsFile.model_validate(doc)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = [p for p in err["loc"] if not str(p).startswith("function-")]
                line = _locate(doc, loc)
                where = f"line {line}: " if line else ""
                problems.append(f"{where}{'.'.join(str(p) for p in loc)}: {err['msg']}")
            raise SkillDeclarationError(problems, source) from exc
        return cls(spec, domain, source=source)

    # -- cross-checks -------------------------------------------------------------------------

    def _check(self) -> list[str]:
        spec, dom = self.spec, self.domain
        intents = set(dom.intent_names)
        problems: list[str] = []
        for name in CONVERSATION_INTENTS:
            if name not in intents:
                problems.append(f"the domain lacks the conversation intent {name!r}")
        seen_intents: dict[str, str] = {}
        for skill in spec.skills.values():
            where = f"skill {skill.name!r}"
            if skill.intent not in intents:
                problems.append(
                    f"{where}: intent {skill.intent!r} is not in the domain "
                    f"(known: {', '.join(sorted(intents))})"
                )
            if skill.intent in CONVERSATION_INTENTS:
                problems.append(f"{where}: {skill.intent!r} is handled by the dialogue itself")
            if skill.intent in seen_intents:
                problems.append(
                    f"{where}: intent {skill.intent!r} is already used by skill "
                    f"{seen_intents[skill.intent]!r}"
                )
            seen_intents[skill.intent] = skill.name
            try:
                subjects.intent_type(skill.service, skill.action)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
            if skill.form is not None and skill.form not in dom.forms:
                problems.append(
                    f"{where}: form {skill.form!r} is not in the domain "
                    f"(known: {', '.join(sorted(dom.forms)) or 'none'})"
                )
            for slot in [*skill.slots, *skill.keep_slots]:
                if slot not in dom.slots:
                    problems.append(f"{where}: slot {slot!r} is not in the domain")
            seen_fields: list[str] = []
            for field, source in skill.payload.items():
                for read in (source.slot, source.or_slot):
                    if read is not None and read not in dom.slots:
                        problems.append(
                            f"{where}: payload field {field!r} reads slot {read!r}, "
                            "which is not in the domain"
                        )
                for other in source.unless:
                    if other not in seen_fields:
                        problems.append(
                            f"{where}: payload field {field!r}: `unless` names {other!r}, "
                            "which is not a field declared above it"
                        )
                seen_fields.append(field)
        for slot, rule in spec.slots.items():
            if slot not in dom.slots:
                problems.append(f"slot rule {slot!r}: no such slot in the domain")
                continue
            if rule.kind == "choice" and not self._choices(slot, rule):
                problems.append(
                    f"slot rule {slot!r}: a choice needs `choices` or a categorical domain slot"
                )
        for form in dom.forms.values():
            for slot in form.required_slots:
                if slot not in dom.slots:
                    problems.append(f"form {form.name!r}: required slot {slot!r} is not declared")
                if self._ask_response(form.name, slot) is None:
                    problems.append(
                        f"form {form.name!r}: no response utter_ask_{slot} "
                        f"(or utter_ask_{form.name}_{slot}) to ask for slot {slot!r}"
                    )
        if spec.default_persona not in spec.personas:
            problems.append(f"default_persona {spec.default_persona!r} is not a persona")
        for persona in spec.personas.values():
            where = f"persona {persona.name!r}"
            for pattern in persona.skills:
                if not fnmatch.filter(spec.skills, pattern):
                    problems.append(f"{where}: {pattern!r} matches no skill")
            if persona.kind == "expert":
                if persona.expert_skill not in spec.skills:
                    problems.append(f"{where}: expert_skill {persona.expert_skill!r} is no skill")
                if not spec.experts:
                    problems.append(f"{where}: an expert persona needs `experts`")
        return problems

    # -- lookups ------------------------------------------------------------------------------

    @property
    def policy(self) -> Any:
        """The dialogue thresholds (``DialoguePolicy``)."""
        return self.spec.policy

    @property
    def skills(self) -> list[SkillSpec]:
        """Every skill, in declaration order."""
        return list(self.spec.skills.values())

    def skill(self, name: str) -> SkillSpec:
        """The skill called ``name`` (KeyError when unknown)."""
        return self.spec.skills[name]

    def skill_for_intent(self, intent: str) -> SkillSpec | None:
        """The skill an intent triggers, if any."""
        return self._by_intent.get(intent)

    def skill_for_action(self, service: str | None, action: str | None) -> SkillSpec | None:
        """The skill that sends ``intent.<service>.<action>`` (for phrasing its Reply)."""
        return next(
            (s for s in self.spec.skills.values() if (s.service, s.action) == (service, action)),
            None,
        )

    def persona(self, bot: str | None) -> Persona:
        """The persona of a bot name: a declared persona, ``expert:<name>``, or the default."""
        personas = self.spec.personas
        name = (bot or "").strip().lower()
        if name in personas and personas[name].kind == "expert":
            # the template itself: its first declared expert
            name = EXPERT_PREFIX + next(iter(self.spec.experts), "")
        if name in personas:
            return personas[name]
        for persona in personas.values():
            if name in persona.aliases:
                return persona
        expert = self.expert_name(name)
        if expert is not None:
            template = next((p for p in personas.values() if p.kind == "expert"), None)
            if template is not None:
                spec = self.spec.experts.get(expert)
                title = spec.title if spec is not None else f"{expert} expert"
                fill = {"expert": expert, "expert_title": title}
                return template.model_copy(
                    update={
                        "name": f"{EXPERT_PREFIX}{expert}",
                        "expert": expert,
                        "title": template.title.format(**fill),
                        "greeting": template.greeting.format(**fill),
                        "help_intro": template.help_intro.format(**fill),
                        "summary": template.summary.format(**fill),
                    }
                )
        return personas[self.spec.default_persona]

    def add_experts(self, experts: Mapping[str, str] | Iterable[str]) -> None:
        """Declare more expert bots (name -> description), e.g. from the front door's experts
        file, so a turn whose ``bot`` is one of those names talks to that expert."""
        items = experts.items() if isinstance(experts, Mapping) else ((n, "") for n in experts)
        declared = dict(self.spec.experts)
        for name, description in items:
            key = name.strip().lower()
            if not _EXPERT_NAME.match(key):
                raise SkillDeclarationError([f"expert name {name!r} is not a valid bot name"])
            if key in self.spec.personas:
                raise SkillDeclarationError([f"expert name {name!r} is already a persona"])
            if key not in declared:
                declared[key] = ExpertSpec(title=f"{key} expert", description=description or "")
        self.spec = self.spec.model_copy(update={"experts": declared})

    def expert_name(self, value: str | None) -> str | None:
        """The expert a bot name means: ``expert:<any name>`` (the generative service's
        experts file decides which exist), or a name declared under ``experts``
        (``ops``, ``ops-expert``, ``expert-ops``)."""
        name = (value or "").strip().lower()
        if name.startswith(EXPERT_PREFIX):
            name = name[len(EXPERT_PREFIX) :].strip()
            return name if _EXPERT_NAME.match(name) else None
        name = name.removeprefix("expert-").removesuffix("-expert").removesuffix(" expert")
        return name if name in self.spec.experts else None

    def resolve_bot(self, value: str | None) -> str | None:
        """A bot-switch target (``support``, ``helpdesk``, ``security``) -> its persona name."""
        name = (value or "").strip().lower()
        if not name:
            return None
        persona = self.persona(name)
        if persona.name == name or name in persona.aliases or persona.kind == "expert":
            return persona.name
        return None

    def allowed(self, persona: Persona, skill: SkillSpec) -> bool:
        """True when ``persona`` offers ``skill``."""
        return any(fnmatch.fnmatchcase(skill.name, p) for p in persona.skills)

    def skills_for(self, persona: Persona) -> list[SkillSpec]:
        """The skills a persona offers, in declaration order."""
        return [s for s in self.spec.skills.values() if self.allowed(persona, s)]

    def title(self, intent: str) -> str:
        """A short human label of an intent (clarification buttons)."""
        skill = self.skill_for_intent(intent)
        if skill is not None:
            return skill.title
        return self.spec.intent_titles.get(intent, intent.replace("_", " "))

    def _choices(self, slot: str, rule: SlotRule) -> list[str]:
        if rule.choices:
            return list(rule.choices)
        domain_slot = self.domain.slots.get(slot)
        return list(domain_slot.values) if domain_slot is not None else []

    def slot_rule(self, slot: str) -> SlotRule:
        """How ``slot`` is recognised/validated (declared, or derived from the domain type)."""
        rule = self.spec.slots.get(slot)
        if rule is not None:
            return rule
        domain_slot = self.domain.slots.get(slot)
        if domain_slot is not None and domain_slot.type == "categorical":
            return SlotRule(kind="choice")
        return SlotRule()

    def choices(self, slot: str) -> list[str]:
        """The allowed values of a choice slot."""
        return self._choices(slot, self.slot_rule(slot))

    def form_slots(self, form: str) -> list[str]:
        """A form's required slots, in order."""
        return list(self.domain.forms[form].required_slots)

    def _ask_response(self, form: str, slot: str) -> str | None:
        for name in (f"utter_ask_{form}_{slot}", f"utter_ask_{slot}"):
            if name in self.domain.responses:
                return name
        return None

    def response(self, name: str, default: str = "", **values: Any) -> tuple[str, list[Button]]:
        """Text and buttons of a domain response (first variation), ``{placeholders}`` filled."""
        variations = self.domain.responses.get(name)
        if not variations:
            return default.format(**values) if values else default, []
        variation = variations[0]
        text = variation.text or ""
        try:
            text = text.format_map(_SafeVars(values))
        except (KeyError, ValueError, IndexError):
            pass  # a placeholder we cannot fill is shown as written, never crashes a turn
        buttons = [Button(title=b.title, payload=b.payload or b.title) for b in variation.buttons]
        return text, buttons

    def ask(self, form: str, slot: str) -> tuple[str, list[Button]]:
        """The question (and buttons) that asks for ``slot`` in ``form``."""
        name = self._ask_response(form, slot)
        return self.response(name or "", f"What is the {slot.replace('_', ' ')}?")

    def render_reply(self, reply: Reply) -> str:
        """The user-facing text of a service's ``Reply``, per the skill's ``reply`` template.

        The template may use ``{text}`` (the service's own text), ``{status}`` and any top-level
        key of ``reply.data``; when a placeholder cannot be filled, or the reply is not ``ok``,
        the service's text is used as it is.
        """
        text = reply.text
        if reply.status == "error" and reply.reference and reply.reference not in text:
            text = f"{text} (reference {reply.reference})".strip()
        if reply.status != "ok":
            return text
        skill = self.skill_for_action(reply.service, reply.action)
        if skill is None or skill.reply == "{text}":
            return text
        values: dict[str, Any] = {**(reply.data or {}), "text": reply.text, "status": reply.status}
        try:
            return skill.reply.format_map(_SafeVars(values))
        except (KeyError, ValueError, IndexError, AttributeError):
            return text

    def template_fields(self, skill: SkillSpec) -> list[str]:
        """Placeholders a skill's reply template uses (for docs and checks)."""
        return _template_fields(skill.reply)
