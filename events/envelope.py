"""The envelope every message on the bus travels in (pydantic v2, frozen).

The ``payload`` travels as a JSON object; each ``type`` has a typed payload model (see
``events.payloads``) and readers turn it into that model with ``Envelope.payload_as``.
Readers ignore unknown fields, so adding an optional field is not a breaking change; a breaking
change gets a new ``type`` or ``v``.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ModelT = TypeVar("ModelT", bound=BaseModel)

Channel = Literal["web", "rest", "slack", "api", "system"]


class Conversation(BaseModel):
    """Where a turn happens and where its answers must go."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel: Channel
    id: str = Field(min_length=1, max_length=256, description="Channel's conversation id")
    thread: str | None = Field(default=None, max_length=256, description="Thread ref (Slack ts)")
    bot: str | None = Field(default=None, max_length=64, description="Which bot is talking")


class Actor(BaseModel):
    """Who acts: an id namespaced by what proved it, a display name, and the resolved roles.

    Ids look like ``slack:U123`` (Slack's signature), ``site:42`` (a token signed by the site
    that embeds the widget), ``user:alice`` (an API key), ``guest:w-...`` (a session the gateway
    issued) or ``system:gateway``. On the bus this is information only: a service believes only
    the signed claim of an intent (``Envelope.claim``, see ``events.claims``).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    roles: tuple[str, ...] = ()

    def has_any(self, roles: set[str] | frozenset[str] | tuple[str, ...]) -> bool:
        """True when the actor holds at least one of ``roles``."""
        return bool(set(self.roles) & set(roles))


SYSTEM_ACTOR = Actor(id="system", name="Frontdoor", roles=("system",))


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One message on the bus: an intent, a reply, a domain or conversation event."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Also the Nats-Msg-Id")
    type: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    v: int = Field(default=1, ge=1)
    correlation_id: uuid.UUID = Field(description="The user turn that started it all")
    causation_id: uuid.UUID | None = Field(default=None, description="The envelope that caused it")
    conversation: Conversation
    actor: Actor
    occurred_at: AwareDatetime = Field(default_factory=_now)
    payload: dict[str, Any] = Field(default_factory=dict)
    claim: str | None = Field(
        default=None,
        max_length=8192,
        repr=False,
        description="Intents and requests: the actor's claim signed by the gateway (a JWT)",
    )

    @classmethod
    def new(
        cls,
        type: str,
        payload: BaseModel | dict[str, Any],
        *,
        conversation: Conversation,
        actor: Actor,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        id: uuid.UUID | None = None,
        v: int = 1,
        claim: str | None = None,
    ) -> Envelope:
        """Build an envelope; a new turn (no ``correlation_id``) correlates with itself."""
        env_id = id or uuid.uuid4()
        body = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        return cls(
            id=env_id,
            type=type,
            v=v,
            correlation_id=correlation_id or env_id,
            causation_id=causation_id,
            conversation=conversation,
            actor=actor,
            payload=body,
            claim=claim,
        )

    def follow(
        self,
        type: str,
        payload: BaseModel | dict[str, Any],
        *,
        actor: Actor | None = None,
        id: uuid.UUID | None = None,
        claim: str | None = None,
    ) -> Envelope:
        """An envelope caused by this one: same correlation and conversation.

        The claim is not inherited: only an intent or request carries one, for its service.
        """
        return Envelope.new(
            type,
            payload,
            conversation=self.conversation,
            actor=actor or self.actor,
            correlation_id=self.correlation_id,
            causation_id=self.id,
            id=id,
            claim=claim,
        )

    def payload_as(self, model: builtins.type[ModelT]) -> ModelT:
        """Validate the payload as ``model`` (raises pydantic.ValidationError when it is not)."""
        return model.model_validate(self.payload)

    def to_bytes(self) -> bytes:
        """Serialise to JSON bytes for the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse wire bytes (unknown fields are ignored)."""
        return cls.model_validate_json(data)
