"""``DialogueEngine``: one user turn in, what to say and which intents to send out.

The engine parses the message (button payloads ``/intent{...}`` bypass the NLU), loads the
conversation's state from the store, runs the pure ``DialoguePolicyRunner`` on a copy and writes
the state back naming the revision it read. When another replica wrote in between, the turn is
decided again on the fresh state (the parse is reused), so no update is lost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from events.envelope import Envelope
from events.errors import FrontdoorError
from events.payloads import IntentDetected
from skills.dialogue.payloads import parse_payload
from skills.dialogue.policy import DialoguePolicyRunner
from skills.dialogue.state import (
    RECENT_TURNS,
    ConversationState,
    ConversationStore,
    RecordedOutcome,
    StateConflict,
    conversation_key,
)
from skills.dialogue.types import BotMessage, TurnOutcome, UserTurn
from skills.nlu.domain import Domain
from skills.nlu.errors import NLUError
from skills.nlu.types import IntentScore, ParseResult
from skills.routing.registry import SkillRegistry

log = logging.getLogger("frontdoor.dialogue")


class DialogueError(FrontdoorError):
    """A turn could not be completed (e.g. the state kept changing under it)."""


class DialogueEngine:
    """Forms, slots, fallback and skills for every conversation, state in a shared store.

    ``nlu`` is anything with ``async parse(text) -> ParseResult`` (an engine, or the model
    lifecycle's manager); ``store`` a ``ConversationStore`` (``KVConversationStore`` in
    production); ``skills`` the ``SkillRegistry``; ``domain`` defaults to the registry's.
    """

    def __init__(
        self,
        nlu: Any,
        store: ConversationStore,
        skills: SkillRegistry,
        domain: Domain | None = None,
        *,
        max_attempts: int = 8,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if domain is not None and domain is not skills.domain:
            skills = SkillRegistry(skills.spec, domain, source=skills.source)
        self.nlu = nlu
        self.store = store
        self.skills = skills
        self.domain = skills.domain
        self.runner = DialoguePolicyRunner(skills)
        self.max_attempts = max_attempts
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    async def open(
        cls, bus: Any, nlu: Any, skills: SkillRegistry | None = None, **options: Any
    ) -> DialogueEngine:
        """The production wiring: state in the ``fd_conversations`` KV bucket of ``bus`` and
        the shipped skills (``SkillRegistry.load()``) unless ``skills`` is given."""
        from skills.dialogue.state import KVConversationStore

        store = await KVConversationStore.open(bus)
        return cls(nlu, store, skills or SkillRegistry.load(), **options)

    async def parse(self, text: str) -> ParseResult:
        """Understand ``text``: a button payload directly, anything else through the NLU."""
        stripped = text.strip()
        if not stripped:
            return ParseResult(
                text=text,
                intent=IntentScore(name="nlu_fallback", confidence=0.0),
                engine="none",
                model_version="-",
                is_fallback=True,
            )
        payload = parse_payload(stripped)
        if payload is not None:
            return payload
        return await self.nlu.parse(stripped)

    def _expired(self, state: ConversationState, now: datetime) -> bool:
        minutes = self.domain.session_config.session_expiration_time
        if not minutes or state.updated_at is None:
            return False
        return now - state.updated_at > timedelta(minutes=minutes)

    async def handle(self, turn: UserTurn) -> TurnOutcome:
        """Run one turn. Never raises for bad input; raises ``DialogueError`` only when the
        state store keeps conflicting beyond ``max_attempts``."""
        try:
            parse = await self.parse(turn.text)
        except NLUError as exc:
            log.warning("NLU unavailable for turn %s: %s", turn.id, exc)
            return TurnOutcome(
                messages=[
                    BotMessage(
                        text="Sorry, I can't understand messages right now (my language model "
                        "is not available). Please try again in a minute."
                    )
                ],
                bot=self.skills.persona(turn.bot).name,
            )
        key = conversation_key(turn.conversation)
        # A store may answer from the states it wrote itself (no round trip); a stale one makes
        # the compare-and-set save fail, and the retry then reads the bucket.
        load = getattr(self.store, "load_for_update", self.store.load)
        turn_id = str(turn.id)
        for _attempt in range(self.max_attempts):
            stored = await load(key)
            state = stored.state  # a new object per load (ConversationStore contract)
            if turn_id in state.recent_turns:
                return _recorded(state, turn_id)  # the turn ran before: never twice
            now = self.clock()
            if self._expired(state, now):
                carry = self.domain.session_config.carry_over_slots_to_new_session
                recent = state.recent_turns
                state = ConversationState(bot=state.bot, slots=dict(state.slots) if carry else {})
                state.recent_turns = recent
                state.clear_form()
            decision = self.runner.decide(turn, parse, state)
            state.updated_at = now
            outcome = self._outcome(turn, parse, state, decision)
            state.recent_turns = [*state.recent_turns[-(RECENT_TURNS - 1) :], turn_id]
            state.last_outcome = _record(turn_id, outcome)
            try:
                await self.store.save(key, state, stored.revision)
            except StateConflict:
                continue
            return outcome
        raise DialogueError(
            f"conversation {key} kept changing; gave up after {self.max_attempts} attempts"
        )

    def _outcome(
        self, turn: UserTurn, parse: ParseResult, state: ConversationState, decision: Any
    ) -> TurnOutcome:
        conversation = turn.conversation.model_copy(update={"bot": decision.persona})
        detected = Envelope.new(
            "intent.detected",
            IntentDetected(
                text=parse.text,
                intent=parse.intent.name,
                confidence=min(max(parse.intent.confidence, 0.0), 1.0),
                entities=[e.model_dump(mode="json") for e in parse.entities],
                engine=parse.engine,
                model_version=parse.model_version,
                is_fallback=parse.is_fallback,
            ),
            conversation=conversation,
            actor=turn.actor,
            correlation_id=turn.id,
            causation_id=turn.id,
            id=uuid.uuid5(turn.id, "intent.detected"),
        )
        return TurnOutcome(
            messages=decision.messages,
            intents=decision.intents,
            events=[detected],
            parse=parse,
            handoff=decision.handoff,
            bot=decision.persona,
            form=state.form,
            requested_slot=state.requested_slot,
        )

    def render_reply(self, reply: Any) -> str:
        """The user-facing text of a service ``Reply`` (the skill's template, else its text)."""
        return self.skills.render_reply(reply)


def _record(turn_id: str, outcome: TurnOutcome) -> RecordedOutcome:
    """What is kept of a turn's outcome to publish it again for a retry."""
    return RecordedOutcome(
        turn=turn_id,
        messages=[m.model_dump(mode="json") for m in outcome.messages],
        intents=[e.model_dump(mode="json", exclude={"claim"}) for e in outcome.intents],
        events=[e.model_dump(mode="json") for e in outcome.events],
        handoff=outcome.handoff,
        bot=outcome.bot,
    )


def _recorded(state: ConversationState, turn_id: str) -> TurnOutcome:
    """The outcome of a turn that ran before: recorded if it was the last one, else nothing."""
    last = state.last_outcome
    if last is None or last.turn != turn_id:
        return TurnOutcome(already_done=True, bot=state.bot or "chatbot")
    return TurnOutcome(
        messages=[BotMessage.model_validate(m) for m in last.messages],
        intents=[Envelope.model_validate(e) for e in last.intents],
        events=[Envelope.model_validate(e) for e in last.events],
        handoff=last.handoff,
        bot=last.bot,
        form=state.form,
        requested_slot=state.requested_slot,
        replayed=True,
    )
