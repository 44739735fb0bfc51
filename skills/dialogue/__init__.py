"""Dialogue: forms and slot filling, cancel, digressions, fallback and clarification, personas.

Public API::

    from skills.dialogue import DialogueEngine, UserTurn, TurnOutcome, BotMessage
    store = await KVConversationStore.open(bus)          # state in NATS KV
    engine = DialogueEngine(nlu=engine_or_manager, store=store, skills=SkillRegistry.load())
    outcome = await engine.handle(UserTurn(text=..., conversation=..., actor=..., bot="support"))
"""

from skills.dialogue.engine import DialogueEngine, DialogueError
from skills.dialogue.payloads import is_payload, make_payload, parse_payload
from skills.dialogue.policy import DialoguePolicyRunner
from skills.dialogue.state import (
    ConversationState,
    ConversationStore,
    InMemoryConversationStore,
    KVConversationStore,
    StateConflict,
    StoredState,
    conversation_key,
)
from skills.dialogue.types import BotMessage, TurnOutcome, UserTurn
from skills.routing import SkillDeclarationError, SkillRegistry

__all__ = [
    "BotMessage",
    "ConversationState",
    "ConversationStore",
    "DialogueEngine",
    "DialogueError",
    "DialoguePolicyRunner",
    "InMemoryConversationStore",
    "KVConversationStore",
    "SkillDeclarationError",
    "SkillRegistry",
    "StateConflict",
    "StoredState",
    "TurnOutcome",
    "UserTurn",
    "conversation_key",
    "is_payload",
    "make_payload",
    "parse_payload",
]
