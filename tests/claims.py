"""Signed claims for tests: one key pair for the whole run, playing the gateway's.

``signed(envelope)`` gives an intent the claim the gateway would sign for its actor and
conversation; ``signed_runner(service, bus, ...)`` is a ``ServiceRunner`` that trusts that key.
"""

from __future__ import annotations

from typing import Any

from backend_services.runtime import Service, ServiceRunner
from events import subjects
from events.bus import Bus
from events.claims import ClaimIssuer, ClaimVerifier, KeyRing, SigningKey
from events.envelope import Envelope

TEST_KEY = SigningKey.generate()
TEST_ISSUER = ClaimIssuer(TEST_KEY)
TEST_KEYS = KeyRing([TEST_KEY.public])


def verifier_for(service: str) -> ClaimVerifier:
    """A verifier of ``service`` that trusts the test key."""
    return ClaimVerifier(TEST_KEYS, service)


def signed_runner(service: Service, bus: Bus, **kwargs: Any) -> ServiceRunner:
    """A ``ServiceRunner`` of ``service`` that trusts claims signed with the test key."""
    return ServiceRunner(service, bus, verifier=verifier_for(service.name), **kwargs)


def claim_for(envelope: Envelope, issuer: ClaimIssuer = TEST_ISSUER) -> str:
    """The claim the gateway would sign for an intent: its actor, service and conversation."""
    target = subjects.parse_intent_type(envelope.type)
    assert target is not None, f"{envelope.type} is not an intent"
    conv = envelope.conversation
    return issuer.issue(envelope.actor, target[0], conversation=(conv.channel, conv.id))


def signed(envelope: Envelope, issuer: ClaimIssuer = TEST_ISSUER) -> Envelope:
    """``envelope`` with the claim the gateway would sign for it."""
    return envelope.model_copy(update={"claim": claim_for(envelope, issuer)})
