"""Signed actor claims: issue, verify, cache, rotate, and every way a token is refused."""

from __future__ import annotations

import jwt
import pytest

from events.claims import (
    ClaimError,
    ClaimIssuer,
    ClaimVerifier,
    KeyRing,
    SigningKey,
    audience_for,
    key_id,
    unverified_conversation,
)
from events.envelope import Actor

ALICE = Actor(id="slack:U1", name="Alice", roles=("admin", "user"))


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_with_roles_email_and_conversation() -> None:
    key = SigningKey.generate()
    token = ClaimIssuer(key).issue(
        ALICE, "management", conversation=("web", "w-1:2"), email="a@example.com"
    )
    claims = ClaimVerifier(KeyRing([key.public]), "management").verify(token)
    assert claims.actor == ALICE
    assert claims.email == "a@example.com"
    assert claims.conversation == ("web", "w-1:2")  # ids may hold ':'
    assert claims.allows("web", "w-1:2") and not claims.allows("web", "w-1")
    assert unverified_conversation(token) == ("web", "w-1:2")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == key.kid == key_id(key.public)


def test_generative_claims_may_be_passed_on_to_management_only() -> None:
    key = SigningKey.generate()
    ring = KeyRing([key.public])
    token = ClaimIssuer(key).issue(ALICE, "generative", conversation=("web", "c"))
    assert audience_for("generative") == ["generative", "management"]
    assert ClaimVerifier(ring, "management").verify(token).actor == ALICE
    with pytest.raises(ClaimError) as refused:
        ClaimVerifier(ring, "marketing").verify(token)
    assert refused.value.reason == "wrong_audience"
    marketing = ClaimIssuer(key).issue(ALICE, "marketing", conversation=("web", "c"))
    with pytest.raises(ClaimError):
        ClaimVerifier(ring, "management").verify(marketing)


def test_issuer_reuses_a_claim_for_half_its_life_then_signs_a_new_one() -> None:
    clock = Clock()
    issuer = ClaimIssuer(SigningKey.generate(), ttl_seconds=600, clock=clock)
    first = issuer.issue(ALICE, "management", conversation=("web", "c"))
    assert issuer.issue(ALICE, "management", conversation=("web", "c")) == first
    # another conversation, service or role set: another claim
    assert issuer.issue(ALICE, "management", conversation=("web", "d")) != first
    assert issuer.issue(ALICE, "analysis", conversation=("web", "c")) != first
    demoted = ALICE.model_copy(update={"roles": ("user",)})
    assert issuer.issue(demoted, "management", conversation=("web", "c")) != first
    clock.now += 301
    assert issuer.issue(ALICE, "management", conversation=("web", "c")) != first


def test_expiry_is_checked_even_for_a_cached_token() -> None:
    clock = Clock()
    key = SigningKey.generate()
    verifier = ClaimVerifier(KeyRing([key.public]), "management", clock=clock, leeway=5)
    token = ClaimIssuer(key, ttl_seconds=60, clock=clock).issue(ALICE, "management")
    assert verifier.verify(token).actor == ALICE
    clock.now += 64
    assert verifier.verify(token).actor == ALICE  # within the leeway
    clock.now += 2
    with pytest.raises(ClaimError) as expired:
        verifier.verify(token)
    assert expired.value.reason == "expired"


def test_rotation_two_keys_valid_at_once_by_kid() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    ring = KeyRing.from_jwks(KeyRing([new.public, old.public]).to_jwks())
    verifier = ClaimVerifier(ring, "management")
    for key in (old, new):
        token = ClaimIssuer(key).issue(ALICE, "management")
        assert verifier.verify(token).actor == ALICE
    retired = ClaimVerifier(KeyRing([new.public]), "management")
    with pytest.raises(ClaimError) as refused:
        retired.verify(ClaimIssuer(old).issue(ALICE, "management"))
    assert refused.value.reason == "unknown_key"


def test_a_token_signed_with_another_algorithm_or_none_is_refused() -> None:
    key = SigningKey.generate()
    verifier = ClaimVerifier(KeyRing([key.public]), "management")
    body = {"iss": "frontdoor", "sub": "slack:U1", "aud": ["management"], "roles": ["admin"]}
    body |= {"iat": 1_800_000_000, "exp": 4_000_000_000}
    unsigned = jwt.encode(body, None, algorithm="none", headers={"kid": key.kid})
    hmac = jwt.encode(body, "x" * 32, algorithm="HS256", headers={"kid": key.kid})
    for token in (unsigned, hmac):
        with pytest.raises(ClaimError):
            verifier.verify(token)


def test_bad_roles_future_iat_missing_claims_and_long_tokens_are_refused() -> None:
    key = SigningKey.generate()
    verifier = ClaimVerifier(KeyRing([key.public]), "management")

    def sign(**body: object) -> str:
        base: dict[str, object] = {"iss": "frontdoor", "sub": "slack:U1", "aud": "management"}
        base |= {"iat": 1_800_000_000, "exp": 4_000_000_000, "roles": ["user"]}
        base.update(body)
        return jwt.encode(
            {k: v for k, v in base.items() if v is not None},
            key.private,
            algorithm="EdDSA",
            headers={"kid": key.kid},
        )

    for token in (
        sign(roles="admin"),
        sign(iat=4_000_000_000 - 10),
        sign(sub=None),
        sign(iss="someone-else"),
        sign(cnv="no-colon"),
        "x" * 9000,
    ):
        with pytest.raises(ClaimError):
            verifier.verify(token)


def test_key_material_round_trips_and_rejects_other_kinds() -> None:
    key = SigningKey.generate()
    assert SigningKey.from_pem(key.to_pem()).kid == key.kid
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="Ed25519"):
        SigningKey.from_pem(other)
    with pytest.raises(ValueError):
        KeyRing.from_jwks('{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}')
    with pytest.raises(ValueError):
        KeyRing([])
    with pytest.raises(ValueError):
        ClaimIssuer(key, ttl_seconds=5)
