"""Skill declarations (``skills.yml``): intent (+ slots) -> ``fd.intent.<service>.<action>``."""

from skills.routing.models import (
    DialoguePolicy,
    ExpertSpec,
    PayloadField,
    Persona,
    SkillsFile,
    SkillSpec,
    SlotRule,
)
from skills.routing.registry import (
    CONVERSATION_INTENTS,
    SkillDeclarationError,
    SkillRegistry,
)

__all__ = [
    "CONVERSATION_INTENTS",
    "DialoguePolicy",
    "ExpertSpec",
    "PayloadField",
    "Persona",
    "SkillDeclarationError",
    "SkillRegistry",
    "SkillSpec",
    "SkillsFile",
    "SlotRule",
]
