"""What goes into a dialogue turn and what comes out of it (the bots layer's contract)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from events.envelope import Actor, Conversation, Envelope
from events.payloads import Button
from skills.nlu.types import ParseResult


class UserTurn(BaseModel):
    """One user message, as the bots layer hands it to the dialogue.

    ``id`` is the turn's id (the ``message.received`` envelope id): it becomes the correlation
    id of every intent the turn sends, and the envelopes built from it have deterministic ids,
    so handling the same turn twice publishes nothing twice.
    """

    model_config = ConfigDict(frozen=True)

    text: str = Field(max_length=4000)
    conversation: Conversation
    actor: Actor
    bot: str | None = Field(default=None, description="which bot the channel talks to")
    id: uuid.UUID = Field(default_factory=uuid.uuid4)


class BotMessage(BaseModel):
    """Something to say to the user right away."""

    text: str
    buttons: list[Button] = Field(default_factory=list)
    image: str | None = None


class TurnOutcome(BaseModel):
    """The result of a turn: messages to send now, envelopes for the bots layer to publish."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    messages: list[BotMessage] = Field(default_factory=list)
    intents: list[Envelope] = Field(
        default_factory=list, description="intent.<service>.<action> envelopes to publish"
    )
    events: list[Envelope] = Field(
        default_factory=list, description="conversation events to publish (intent.detected)"
    )
    parse: ParseResult | None = None
    handoff: bool = Field(default=False, description="the user asked for a human this turn")
    bot: str = Field(default="chatbot", description="the persona that answered")
    form: str | None = Field(default=None, description="the form still active after the turn")
    requested_slot: str | None = None
    replayed: bool = Field(
        default=False, description="the turn had run before: this is its recorded outcome"
    )
    already_done: bool = Field(
        default=False,
        description="the turn ran before and a later turn followed: nothing to publish again",
    )

    @property
    def text(self) -> str:
        """All messages' text, one per line (handy for logs and tests)."""
        return "\n".join(m.text for m in self.messages)
