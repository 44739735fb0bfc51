"""The dialogue's decisions for one turn, given the parse and the state (no I/O here).

``DialoguePolicyRunner.decide(turn, parse, state)`` mutates ``state`` and returns what to say and
which intents to send. Order of business:

1. A form is active: the answer fills the requested slot (free text is taken as it is unless it
   is a clear cancel/help/handoff), several slots may be filled at once, a bad value is refused
   with the reason and asked again, "never mind" cancels, a question (digression) is answered
   and the pending question asked again.
2. No form: too unsure -> "Sorry, I didn't get that"; two close intents -> "Did you mean A or
   B?" with ``/intent{...}`` buttons; conversation intents (greet, help, cancel, bot switch,
   handoff, out of scope, ...) are answered here; a skill's intent starts its form or is sent
   to its service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from events.envelope import Envelope
from events.payloads import Button
from skills.dialogue.intents import build_intent
from skills.dialogue.payloads import ENGINE as PAYLOAD_ENGINE
from skills.dialogue.payloads import make_payload
from skills.dialogue.slots import SlotFiller
from skills.dialogue.state import ConversationState
from skills.dialogue.types import BotMessage, UserTurn
from skills.nlu.types import ParseResult
from skills.routing.models import Persona, SkillSpec
from skills.routing.registry import SkillRegistry

#: Intents that may interrupt a form even while a free-text answer is expected.
INTERRUPTS = frozenset({"cancel", "help", "human_handoff", "bot_switch", "goodbye"})
#: Intents answered by the dialogue itself that count as a digression inside a form.
LOCAL_DIGRESSIONS = frozenset({"help", "greet", "out_of_scope", "thanks"})
#: A free-text answer at least this long (and not a question) is never read as a command.
LONG_ANSWER_WORDS = 7
#: Rasa's fallback intent name (a Rasa server may return it).
NLU_FALLBACK = "nlu_fallback"


@dataclass
class Decision:
    """What one turn produced."""

    messages: list[BotMessage] = field(default_factory=list)
    intents: list[Envelope] = field(default_factory=list)
    handoff: bool = False
    persona: str = ""

    def say(self, text: str, buttons: list[Button] | None = None) -> None:
        """Add a message."""
        self.messages.append(BotMessage(text=text, buttons=list(buttons or [])))


class DialoguePolicyRunner:
    """Pure turn logic over a ``SkillRegistry`` (domain + skills + thresholds)."""

    def __init__(self, registry: SkillRegistry) -> None:
        self.registry = registry
        self.policy = registry.policy
        self.slots = SlotFiller(registry)

    # -- entry point ----------------------------------------------------------------------------

    def decide(self, turn: UserTurn, parse: ParseResult, state: ConversationState) -> Decision:
        """Run the turn: mutate ``state`` and return the decision."""
        persona = self.registry.persona(state.bot or turn.bot)
        out = Decision(persona=persona.name)
        state.turns += 1
        state.last_intents = [*state.last_intents, parse.intent.name][
            -self.policy.max_last_intents :
        ]
        if state.form is not None and state.form in self.registry.domain.forms:
            self._in_form(turn, parse, state, persona, out)
        else:
            state.clear_form()
            self._free(turn, parse, state, persona, out)
        out.persona = self.registry.persona(state.bot or turn.bot).name
        return out

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _is_button(parse: ParseResult) -> bool:
        return parse.engine == PAYLOAD_ENGINE

    def help_text(self, persona: Persona) -> str:
        """The persona's help: its intro and one line per skill it offers."""
        lines = [persona.help_intro]
        lines += [f"• {s.help}" for s in self.registry.skills_for(persona) if s.help]
        if persona.kind == "expert":
            return persona.help_intro
        lines.append('Say "cancel" or "never mind" at any time to stop what we are doing.')
        return "\n".join(lines)

    def _summary(self, persona: Persona) -> str:
        if persona.summary:
            return persona.summary
        titles = [s.title for s in self.registry.skills_for(persona)]
        if len(titles) > 6:
            titles = [*titles[:6], "more"]
        return ", ".join(titles[:-1]) + (f" and {titles[-1]}" if len(titles) > 1 else titles[0])

    def _ask(self, state: ConversationState, out: Decision, prefix: str = "") -> None:
        assert state.form is not None and state.requested_slot is not None
        question, buttons = self.registry.ask(state.form, state.requested_slot)
        out.say(f"{prefix}\n\n{question}".strip() if prefix else question, buttons)

    def _missing(self, state: ConversationState) -> list[str]:
        assert state.form is not None
        return [s for s in self.registry.form_slots(state.form) if state.slots.get(s) is None]

    def _fill_extras(
        self, state: ConversationState, parse: ParseResult, slots: list[str], *, scan: bool
    ) -> None:
        for slot in slots:
            if state.slots.get(slot) is None:
                value = self.slots.extra(slot, parse, scan=scan)
                if value is not None:
                    state.slots[slot] = value

    # -- inside a form ----------------------------------------------------------------------

    def _in_form(
        self,
        turn: UserTurn,
        parse: ParseResult,
        state: ConversationState,
        persona: Persona,
        out: Decision,
    ) -> None:
        assert state.form is not None
        if state.requested_slot is None:
            missing = self._missing(state)
            if not missing:  # every slot known already: finish the form
                self._advance(turn, state, persona, out)
                return
            state.requested_slot = missing[0]
        slot = state.requested_slot
        intent, conf = parse.intent.name, parse.intent.confidence
        button = self._is_button(parse)
        free_text = slot is not None and self.registry.slot_rule(slot).kind == "text"
        text = parse.text.strip()
        words = len(text.split())
        # A short or question-like message is more likely a side remark than an answer.
        remark = text.endswith("?") or words <= 4
        if button:
            sure = True
        elif free_text:
            # A long statement while a free-text answer is expected IS the answer, whatever
            # words it uses ("...whenever I switch networks" is no request to switch bots).
            statement = not text.endswith("?") and words >= LONG_ANSWER_WORDS
            sure = not statement and (
                conf >= self.policy.free_text_interrupt
                or (conf >= self.policy.digression_threshold and remark)
            )
        else:
            sure = conf >= self.policy.digression_threshold

        if intent in INTERRUPTS and sure:
            if intent == "cancel":
                state.clear_form()
                out.say(self.registry.response("utter_cancelled", "Okay, I've cancelled that.")[0])
            elif intent == "goodbye":
                state.clear_form()
                out.say(self.registry.response("utter_goodbye", "Goodbye!")[0])
            elif intent == "help":
                self._ask(state, out, prefix=self.help_text(persona))
            else:  # handoff or bot switch: leave the form, then do it
                state.clear_form()
                self._free(turn, parse, state, persona, out)
            return

        if free_text and sure and intent in ("greet", "thanks"):
            self._ask(state, out, prefix=self._local_answer(intent, persona, state))
            return

        answer = None
        if slot is not None:
            # a button carries values, never free text: only its entities can answer
            answer = (
                self.slots.from_entities(slot, parse)
                if button and not self.slots.from_intent(slot, parse, state.form).ok
                else self.slots.answer(slot, parse, state.form)
            )
        if answer is not None and answer.ok:
            state.slots[slot] = answer.value  # type: ignore[index]
            self._fill_extras(state, parse, self.registry.form_slots(state.form), scan=button)
            self._advance(turn, state, persona, out)
            return

        # No usable answer: a question on the side (digression), or a refused value.
        attempt = words == 1 and intent not in ("greet", "help")  # one token: a (bad) answer
        if not free_text and sure and not attempt:
            if intent in LOCAL_DIGRESSIONS:
                answer_text = self._local_answer(intent, persona, state)
                self._ask(state, out, prefix=answer_text)
                return
            skill = self.registry.skill_for_intent(intent)
            if (
                skill is not None
                and skill.name != state.form_skill
                and self.registry.allowed(persona, skill)
            ):
                # another skill, complete in this message (e.g. "what's up with #42?")
                needed = self.registry.form_slots(skill.form) if skill.form else []
                found = {n: self.slots.extra(n, parse, scan=True) for n in needed}
                if all(v is not None for v in found.values()):
                    self._submit(turn, parse, state, skill, persona, out, slots=found)
                    self._ask(state, out, prefix="Meanwhile, back to where we were:")
                    return
        error = answer.error if answer is not None else None
        self._ask(state, out, prefix=error or "")

    def _advance(
        self, turn: UserTurn, state: ConversationState, persona: Persona, out: Decision
    ) -> None:
        """Ask the next missing slot, or submit the completed form."""
        missing = self._missing(state)
        if missing:
            state.requested_slot = missing[0]
            self._ask(state, out)
            return
        skill = self.registry.skill(state.form_skill) if state.form_skill else None
        slots = dict(state.slots)
        keep = skill.keep_slots if skill else []
        state.clear_form(keep=keep)
        if skill is not None:
            self._submit(turn, None, state, skill, persona, out, slots=slots)

    # -- no form active ----------------------------------------------------------------------

    def _free(
        self,
        turn: UserTurn,
        parse: ParseResult,
        state: ConversationState,
        persona: Persona,
        out: Decision,
    ) -> None:
        intent, conf = parse.intent.name, parse.intent.confidence
        button = self._is_button(parse)
        known = intent in self.registry.domain.intent_names
        local = INTERRUPTS | {"greet", "goodbye", "thanks"}
        sure = button or conf >= self.policy.digression_threshold
        if persona.kind == "expert" and not (intent in local and sure):
            skill = self.registry.skill(persona.expert_skill or "")
            self._submit(turn, parse, state, skill, persona, out, slots={})
            return
        if (
            not known
            or intent == NLU_FALLBACK
            or (not button and (parse.is_fallback or conf < self.policy.fallback_threshold))
        ):
            # two-stage fallback: two close candidates -> ask which; else "didn't get that"
            if button or not self._clarify(parse, out):
                self._fallback(persona, out)
            return
        if not button and self._clarify(parse, out):
            return
        self._dispatch(turn, parse, state, persona, out)

    def _fallback(self, persona: Persona, out: Decision) -> None:
        text, _ = self.registry.response("utter_default", "Sorry, I didn't get that.")
        out.say(
            f'{text} I can {self._summary(persona)}; say "help" to see everything I can do.',
            [Button(title="What can you do?", payload="/help")],
        )

    def _clarify(self, parse: ParseResult, out: Decision) -> bool:
        ranking = sorted(
            (s for s in parse.intent_ranking if s.name != NLU_FALLBACK),
            key=lambda s: s.confidence,
            reverse=True,
        )
        if len(ranking) < 2:
            return False
        first, second = ranking[0], ranking[1]
        vague = {"inform", "affirm", "deny", "out_of_scope", NLU_FALLBACK}
        if first.name in vague or second.name in vague or first.name == second.name:
            return False
        if second.confidence < self.policy.clarify_floor:
            return False
        if first.confidence - second.confidence >= self.policy.ambiguity_margin:
            return False
        entities = {e.entity: e.value for e in parse.entities}
        options = [self.registry.title(first.name), self.registry.title(second.name)]
        text, _ = self.registry.response("utter_clarify", "Did you mean")
        text = f"{text.rstrip(' ?:')} " + " or ".join(f'"{o}"' for o in options) + "?"
        buttons = [
            Button(title=options[0][:80], payload=make_payload(first.name, entities)[:500]),
            Button(title=options[1][:80], payload=make_payload(second.name, entities)[:500]),
        ]
        out.say(text, buttons)
        return True

    def _local_answer(self, intent: str, persona: Persona, state: ConversationState) -> str:
        """Text of a conversation intent answered by the dialogue itself."""
        if intent == "greet":
            return persona.greeting
        if intent == "help":
            return self.help_text(persona)
        if intent == "thanks":
            return self.registry.response("utter_thanks", "You're welcome!")[0]
        if intent == "goodbye":
            return self.registry.response("utter_goodbye", "Goodbye!")[0]
        if intent == "out_of_scope":
            text = self.registry.response("utter_out_of_scope", "Sorry, I can't help with that.")[0]
            return f"{text} I can {self._summary(persona)}."
        if intent == "cancel":
            return self.registry.response("utter_nothing_to_cancel", "Okay.")[0]
        if intent == "deny":
            return self.registry.response("utter_deny", "Okay.")[0]
        if intent == "affirm":
            return self.registry.response("utter_affirm", "Okay.")[0]
        text, _ = self.registry.response("utter_default", "Sorry, I didn't get that.")
        return f'{text} Say "help" to see what I can do.'

    def _dispatch(
        self,
        turn: UserTurn,
        parse: ParseResult,
        state: ConversationState,
        persona: Persona,
        out: Decision,
    ) -> None:
        intent = parse.intent.name
        if intent == "bot_switch":
            self._switch(parse, state, out)
            return
        if intent == "human_handoff":
            self._handoff(turn, parse, state, persona, out)
            return
        skill = self.registry.skill_for_intent(intent)
        if skill is None:
            out.say(self._local_answer(intent, persona, state))
            if intent == "greet":
                state.handoff = False
            return
        if not self.registry.allowed(persona, skill):
            target = self.registry.spec.default_persona
            out.say(
                f"That's not something I do as the {persona.title}, but the "
                f"{self.registry.persona(target).title} can {skill.title}. Shall I switch?",
                [
                    Button(
                        title=f"Switch to the {self.registry.persona(target).title}"[:80],
                        payload=make_payload("bot_switch", {"bot": target}),
                    )
                ],
            )
            return
        self._start(turn, parse, state, skill, persona, out)

    def _switch(self, parse: ParseResult, state: ConversationState, out: Decision) -> None:
        target = None
        for entity in parse.entities:
            if entity.entity in ("bot", "expert"):
                target = self.registry.resolve_bot(str(entity.value))
                if entity.entity == "expert":
                    target = self.registry.resolve_bot(f"expert:{entity.value}")
                if target:
                    break
        if target is None:
            for persona in self.registry.spec.personas.values():
                words = [persona.name, *persona.aliases]
                if persona.kind == "assistant" and any(
                    w in parse.text.lower() for w in words if len(w) > 3
                ):
                    target = persona.name
                    break
        if target is None:
            buttons = [
                Button(title=p.title[:80], payload=make_payload("bot_switch", {"bot": p.name}))
                for p in self.registry.spec.personas.values()
                if p.kind == "assistant"
            ]
            buttons += [
                Button(
                    title=spec.title[:80].capitalize(),
                    payload=make_payload("bot_switch", {"bot": f"expert:{name}"}),
                )
                for name, spec in self.registry.spec.experts.items()
            ]
            out.say("Who would you like to talk to?", buttons)
            return
        state.bot = target
        persona = self.registry.persona(target)
        out.say(persona.greeting)

    def _handoff(
        self,
        turn: UserTurn,
        parse: ParseResult,
        state: ConversationState,
        persona: Persona,
        out: Decision,
    ) -> None:
        state.handoff = True
        out.handoff = True
        out.say(self.registry.response("utter_handoff", "I'm getting you a person.")[0])
        escalate = self.registry.skill_for_intent("ticket_escalate")
        ticket = self.slots.extra("ticket_id", parse, scan=True)
        if escalate is not None and ticket is not None:
            self._submit(turn, parse, state, escalate, persona, out, slots={"ticket_id": ticket})

    # -- running a skill ---------------------------------------------------------------------

    def _start(
        self,
        turn: UserTurn,
        parse: ParseResult,
        state: ConversationState,
        skill: SkillSpec,
        persona: Persona,
        out: Decision,
    ) -> None:
        """A skill's intent arrived: start its form, or send it right away."""
        slots: dict[str, Any] = {}
        form_slots = self.registry.form_slots(skill.form) if skill.form else []
        for slot in [*form_slots, *skill.slots]:
            value = self.slots.extra(slot, parse, scan=True)
            if value is not None:
                slots[slot] = value
        if skill.form is None:
            self._submit(turn, parse, state, skill, persona, out, slots=slots)
            return
        state.form, state.form_skill = skill.form, skill.name
        state.slots.update(slots)
        self._advance(turn, state, persona, out)

    def _submit(
        self,
        turn: UserTurn,
        parse: ParseResult | None,
        state: ConversationState,
        skill: SkillSpec,
        persona: Persona,
        out: Decision,
        *,
        slots: dict[str, Any],
    ) -> None:
        """Build the skill's payload and the ``intent.<service>.<action>`` envelope."""
        if parse is not None:
            for slot in skill.slots:
                if slot not in slots:
                    value = self.slots.extra(slot, parse, scan=True)
                    if value is not None:
                        slots[slot] = value
        out.intents.append(build_intent(turn, skill, slots, persona))
        if skill.working:
            out.say(skill.working)
