"""Typed payloads of the envelope types the bus itself knows.

Services declare the payload models of their own intents and domain events next to their
handlers; the types here are the ones every part of Frontdoor shares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Button(_Payload):
    """A quick-reply button: what it shows and what it sends back when pressed."""

    title: str = Field(min_length=1, max_length=80)
    payload: str = Field(min_length=1, max_length=500)


class MessageReceived(_Payload):
    """``message.received``: a user said something on a channel."""

    text: str = Field(max_length=4000)
    channel_message_id: str | None = Field(
        default=None, description="The channel's own id (Slack event_id, client message id)"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class IntentDetected(_Payload):
    """``intent.detected``: what NLU understood of a message."""

    text: str
    intent: str
    confidence: float = Field(ge=0.0, le=1.0)
    entities: list[dict[str, Any]] = Field(default_factory=list)
    engine: str
    model_version: str
    is_fallback: bool = False


ReplyStatus = Literal["ok", "error", "invalid", "denied", "working"]


class Reply(_Payload):
    """``reply``: something to say to the user of ``conversation``.

    ``status`` tells the front door how to present it: ``ok`` (an answer), ``error`` (a handler
    failed; ``reference`` is the short id the user can quote), ``invalid`` (the request did not
    validate; ``errors`` says why), ``denied`` (the actor lacks a role), ``working`` (a progress
    note, more follows).
    """

    text: str = Field(default="", max_length=40000)
    status: ReplyStatus = "ok"
    service: str | None = None
    action: str | None = None
    data: dict[str, Any] | None = None
    buttons: list[Button] = Field(default_factory=list)
    image: str | None = Field(default=None, description="URL of an image (e.g. a chart PNG)")
    reference: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)


ServiceStateName = Literal["started", "ready", "stopping", "stopped"]


class ServiceState(_Payload):
    """``service.started`` / ``service.ready`` / ``service.stopping``: a service's lifecycle."""

    service: str
    instance: str
    state: ServiceStateName
    version: str = "0.1.0"
    endpoints: list[str] = Field(default_factory=list)


class IntentFailed(_Payload):
    """``intent.failed``: an intent was given up on after its last delivery (for analysis)."""

    service: str
    action: str
    reference: str
    deliveries: int
    error: str


class SecurityRefusal(_Payload):
    """``security.claim_rejected``: a service refused an intent or request whose signed claim
    it could not trust (missing, forged, expired, for another service). For audit and alerts."""

    service: str
    action: str
    door: Literal["intent", "request"]
    reason: str = Field(description="missing, malformed, unknown_key, bad_signature, expired, ...")
    claimed_actor: str | None = Field(
        default=None, max_length=256, description="The unverified actor id the sender gave"
    )


#: Type of the event a service publishes when it refuses an untrusted claim.
CLAIM_REJECTED = "security.claim_rejected"

#: Bus-level envelope types and their payload models (used for the JSON-Schema snapshot).
PAYLOAD_TYPES: dict[str, type[BaseModel]] = {
    "message.received": MessageReceived,
    "intent.detected": IntentDetected,
    "reply": Reply,
    "service.started": ServiceState,
    "service.ready": ServiceState,
    "service.stopping": ServiceState,
    "intent.failed": IntentFailed,
    CLAIM_REJECTED: SecurityRefusal,
}
