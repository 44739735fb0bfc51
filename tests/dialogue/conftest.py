"""Dialogue test fixtures: the NLU trained once per module on the shipped data, the registry,
and helpers to drive conversations."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from events.envelope import Actor, Conversation
from skills.data import NLU_FILE
from skills.dialogue import (
    DialogueEngine,
    InMemoryConversationStore,
    SkillRegistry,
    TurnOutcome,
    UserTurn,
)
from skills.nlu.rasa_data import load_training_data
from skills.nlu.types import IntentScore, ParseResult
from tests.dialogue.stub_nlu import StubEngine


def train_nlu() -> Any:
    """The real built-in engine when it exists, else the deterministic stub engine.

    ``FRONTDOOR_TEST_NLU=stub`` forces the stub; ``=sparse`` the built-in without embeddings.
    """
    data = load_training_data([NLU_FILE])
    if os.environ.get("FRONTDOOR_TEST_NLU") == "stub":
        return StubEngine(data)
    try:
        from skills.nlu.builtin.config import BuiltinConfig
        from skills.nlu.builtin.engine import BuiltinEngine
    except ImportError:
        return StubEngine(data)
    if os.environ.get("FRONTDOOR_TEST_NLU") == "sparse":  # no sentence embeddings
        return BuiltinEngine.train(data, BuiltinConfig(use_embeddings=False, cv_folds=0))
    return BuiltinEngine.train(data)


@pytest.fixture(scope="session")
def nlu() -> Any:
    """An NLU engine trained on skills/data/nlu.yml (once per test session: training the
    built-in engine takes ~20 s, and every dialogue module uses the same data)."""
    return train_nlu()


@pytest.fixture(scope="module")
def registry() -> SkillRegistry:
    """The shipped skills.yml + domain.yml."""
    return SkillRegistry.load()


class Chat:
    """One conversation driven turn by turn."""

    def __init__(self, engine: DialogueEngine, bot: str = "chatbot", cid: str | None = None):
        self.engine = engine
        self.bot = bot
        self.conversation = Conversation(channel="web", id=cid or uuid.uuid4().hex)
        self.actor = Actor(id="web:u1", name="Ana Tester", roles=("user",))

    async def say(self, text: str) -> TurnOutcome:
        turn = UserTurn(text=text, conversation=self.conversation, actor=self.actor, bot=self.bot)
        return await self.engine.handle(turn)


@pytest.fixture
def chat(nlu: Any, registry: SkillRegistry) -> Callable[..., Chat]:
    """``chat(bot="support")`` -> a new conversation over an in-memory store."""
    store = InMemoryConversationStore()

    def make(bot: str = "chatbot", cid: str | None = None) -> Chat:
        return Chat(DialogueEngine(nlu, store, registry), bot, cid)

    return make


class FixedNLU:
    """An NLU that answers a prepared ranking (to test fallback and clarification exactly)."""

    name = "fixed"
    version = "1"

    def __init__(self, ranking: list[tuple[str, float]], entities: list[Any] | None = None):
        self.ranking = [IntentScore(name=n, confidence=c) for n, c in ranking]
        self.entities = entities or []

    async def parse(self, text: str) -> ParseResult:
        return ParseResult(
            text=text,
            intent=self.ranking[0],
            intent_ranking=self.ranking,
            entities=self.entities,
            engine=self.name,
            model_version=self.version,
        )
