"""Signed actor claims: who acts, with which roles, for which service, until when.

Only the gateway (and the CLI with the operator's key) holds the private signing key and issues
claims; every service holds only the public keys and verifies the claim of each intent or request
before any handler runs. A service that is taken over can therefore read what it is sent, but it
cannot make itself, or anyone, an admin elsewhere.

A claim is a JWT signed with Ed25519 (``EdDSA``, PyJWT + cryptography):

- ``iss`` ``frontdoor``; ``kid`` in the header names the key (RFC 7638 thumbprint), so two keys
  can be valid at once while one is rotated out;
- ``sub`` the actor id (namespaced by the channel that proved it: ``slack:U123``, ``site:42``,
  ``user:alice``, ``guest:w-...``, ``system:gateway``), ``name``, ``roles``, and ``email`` only
  when the email was verified;
- ``aud`` the service it is for (plus the services it may be passed on to, ``DELEGATIONS``);
- ``cnv`` the conversation it was issued for (``<channel>:<id>``): a service refuses an envelope
  of another conversation, so "my own conversation" checks can trust the envelope's;
- ``iat``/``exp``: short-lived (``DEFAULT_TTL_SECONDS``).

Issuing and verifying are cached (the same actor talking to the same service reuses its claim
for half its lifetime; a service verifies a given token once), so a conversation's turns pay for
neither the signature nor its check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cachetools import TTLCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from events.envelope import Actor
from events.errors import FrontdoorError

ISSUER: Final = "frontdoor"
ALGORITHM: Final = "EdDSA"
#: Lifetime of a claim. An intent that waited longer in the queue is refused (the user is told
#: to send it again); the issuer renews claims at half-life, so a fresh intent has >= half left.
DEFAULT_TTL_SECONDS: Final = 600
#: Clock skew tolerated between the gateway and a service.
LEEWAY_SECONDS: Final = 5
#: The services a claim for a service may be passed on to: generative reads a ticket from
#: management *as the user* (NATS permissions limit it to ``management.ticket_get``).
DELEGATIONS: Final[Mapping[str, tuple[str, ...]]] = {"generative": ("management",)}
#: The actor of a component acting for itself (e.g. the gateway resolving roles).
SYSTEM_ROLE: Final = "system"
#: The role of an unidentified caller (widget and REST guests, anonymous API callers).
GUEST_ROLE: Final = "guest"

Clock = Callable[[], float]


class ClaimError(FrontdoorError):
    """A claim that cannot be trusted; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def audience_for(service: str) -> list[str]:
    """The ``aud`` of a claim for ``service``: it, and whom it may delegate to."""
    return [service, *DELEGATIONS.get(service, ())]


def system_actor(component: str) -> Actor:
    """The actor of ``component`` acting for itself (``system:<component>``, role ``system``)."""
    return Actor(id=f"system:{component}", name=component, roles=(SYSTEM_ROLE,))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint of ``key`` (its ``kid``)."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64(_public_raw(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True)
class SigningKey:
    """The private key claims are signed with, and its ``kid``."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: str | bytes) -> SigningKey:
        """Load a PKCS#8 PEM Ed25519 private key (raises ``ValueError`` for anything else)."""
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the claims signing key must be an Ed25519 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM (unencrypted: protect the file, mode 0600)."""
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self.private.public_key()

    @property
    def kid(self) -> str:
        """The key id put in every claim's header."""
        return key_id(self.public)


class KeyRing:
    """The public keys a service accepts, by ``kid`` (a JWKS document on disk or in env)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): k for k in keys}
        if not self._keys:
            raise ValueError("a key ring needs at least one public key")

    @property
    def kids(self) -> list[str]:
        """The key ids, in no particular order."""
        return list(self._keys)

    def get(self, kid: str) -> Ed25519PublicKey | None:
        """The key ``kid``, or ``None``."""
        return self._keys.get(kid)

    @classmethod
    def from_jwks(cls, document: str | bytes | Mapping[str, Any]) -> KeyRing:
        """Read a JWKS (``{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ...}, ...]}``)."""
        data = json.loads(document) if isinstance(document, str | bytes) else document
        entries = data.get("keys") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("a JWKS document is an object with a 'keys' list")
        keys: list[Ed25519PublicKey] = []
        for entry in entries:
            if not (
                isinstance(entry, Mapping)
                and entry.get("kty") == "OKP"
                and entry.get("crv") == "Ed25519"
                and isinstance(entry.get("x"), str)
            ):
                raise ValueError("every key of the JWKS must be an Ed25519 (OKP) public key")
            raw = base64.urlsafe_b64decode(entry["x"] + "=" * (-len(entry["x"]) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        return cls(keys)

    def to_jwks(self) -> dict[str, Any]:
        """The JWKS document of these keys."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64(_public_raw(k)),
                    "kid": kid,
                    "use": "sig",
                    "alg": ALGORITHM,
                }
                for kid, k in self._keys.items()
            ]
        }


@dataclass(frozen=True)
class VerifiedClaims:
    """What a valid claim proves: the actor (roles included), a verified email, the expiry."""

    actor: Actor
    email: str | None
    expires_at: float
    issuer: str
    #: ``(channel, id)`` of the conversation the claim is bound to, when it is bound to one
    conversation: tuple[str, str] | None = None

    def allows(self, channel: str, conversation_id: str) -> bool:
        """True when an envelope of this conversation may carry the claim."""
        return self.conversation is None or self.conversation == (channel, conversation_id)


class ClaimIssuer:
    """Signs claims (gateway, CLI). Reuses a claim for the same actor and audience until half
    its lifetime has passed, so a conversation's turns are not each signed again."""

    def __init__(
        self,
        key: SigningKey,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Clock = time.time,
        cache_size: int = 50_000,
    ) -> None:
        if ttl_seconds < 30:
            raise ValueError("claims must live at least 30 seconds")
        self._key = key
        self._kid = key.kid
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._cache: TTLCache[tuple[Any, ...], tuple[float, str]] = TTLCache(
            maxsize=cache_size, ttl=ttl_seconds / 2, timer=clock
        )

    @property
    def kid(self) -> str:
        """The id of the key claims are signed with."""
        return self._kid

    def issue(
        self,
        actor: Actor,
        service: str,
        *,
        conversation: tuple[str, str] | None = None,
        email: str | None = None,
    ) -> str:
        """A claim that ``actor`` (with ``email`` when verified) calls ``service`` from
        ``conversation`` (``(channel, id)``; ``None`` only for components acting for
        themselves)."""
        cache_key = (actor.id, actor.name, actor.roles, email, service, conversation)
        now = self._clock()
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        issued_at = int(now)
        expires = issued_at + self.ttl_seconds
        body: dict[str, Any] = {
            "iss": ISSUER,
            "sub": actor.id,
            "aud": audience_for(service),
            "iat": issued_at,
            "exp": expires,
            "roles": list(actor.roles),
        }
        if actor.name:
            body["name"] = actor.name
        if email:
            body["email"] = email
        if conversation is not None:
            body["cnv"] = f"{conversation[0]}:{conversation[1]}"
        token = jwt.encode(body, self._key.private, algorithm=ALGORITHM, headers={"kid": self._kid})
        self._cache[cache_key] = (issued_at + self.ttl_seconds / 2, token)
        return token


class ClaimVerifier:
    """Verifies claims for one service (``audience``); each distinct token is checked once."""

    def __init__(
        self,
        keys: KeyRing,
        audience: str,
        *,
        clock: Clock = time.time,
        leeway: float = LEEWAY_SECONDS,
        cache_size: int = 50_000,
    ) -> None:
        self._keys = keys
        self.audience = audience
        self._clock = clock
        self._leeway = leeway
        # Bounded by size and by a TTL longer than any claim lives; expiry is checked on use.
        self._cache: TTLCache[str, VerifiedClaims] = TTLCache(
            maxsize=cache_size, ttl=24 * 3600, timer=clock
        )

    def verify(self, token: str | None) -> VerifiedClaims:
        """The claims of ``token``, or ``ClaimError`` saying why it cannot be trusted."""
        if not token:
            raise ClaimError("missing", "no signed claim: only the gateway may call services")
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + self._leeway < now:
                raise ClaimError("expired", "the claim has expired")
            return cached
        verified = self._decode(token, now)
        self._cache[token] = verified
        return verified

    def _decode(self, token: str, now: float) -> VerifiedClaims:
        if len(token) > 8192:
            raise ClaimError("malformed", "the claim is too long")
        kid = _unverified_kid(token)
        key = self._keys.get(kid) if kid is not None else None
        if key is None:
            raise ClaimError("unknown_key", "the claim is signed with an unknown key")
        try:
            body = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ClaimError("expired", "the claim has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise ClaimError("wrong_audience", f"the claim is not for {self.audience}") from exc
        except jwt.InvalidSignatureError as exc:
            raise ClaimError("bad_signature", "the claim's signature is not valid") from exc
        except jwt.PyJWTError as exc:
            raise ClaimError("invalid", f"the claim is not valid ({type(exc).__name__})") from exc
        if float(body["iat"]) > now + self._leeway:
            raise ClaimError("invalid", "the claim is issued in the future")
        return _claims_of(body)


def _unverified_kid(token: str) -> str | None:
    """The ``kid`` of a JWT's header, read WITHOUT checking anything, only to pick the key that
    ``jwt.decode`` then checks the whole token with (PyJWT's own header reader validates the
    encoding character by character, and decoding does it again)."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise ClaimError("malformed", "the claim is not a JWT") from exc
    if not isinstance(header, dict):
        raise ClaimError("malformed", "the claim is not a JWT")
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def _claims_of(body: Mapping[str, Any]) -> VerifiedClaims:
    roles = body.get("roles", [])
    name = body.get("name")
    email = body.get("email")
    bound = body.get("cnv")
    conversation: tuple[str, str] | None = None
    if bound is not None:
        channel, sep, conversation_id = str(bound).partition(":")
        if not sep or not conversation_id:
            raise ClaimError("invalid", "the claim's conversation is malformed")
        conversation = (channel, conversation_id)
    if not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
        raise ClaimError("invalid", "the claim's roles are not a list of names")
    try:
        actor = Actor(
            id=str(body["sub"]),
            name=name if isinstance(name, str) else None,
            roles=tuple(roles),
        )
    except ValueError as exc:
        raise ClaimError("invalid", "the claim's subject is not a valid actor") from exc
    return VerifiedClaims(
        actor=actor,
        email=email if isinstance(email, str) else None,
        expires_at=float(body["exp"]),
        issuer=str(body["iss"]),
        conversation=conversation,
    )


def unverified_conversation(token: str) -> tuple[str, str] | None:
    """The ``cnv`` a token names, read WITHOUT checking it (to build the envelope that the
    verification then binds to it); ``None`` when it names none or is not a JWT."""
    try:
        body = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    bound = body.get("cnv") if isinstance(body, dict) else None
    if not isinstance(bound, str):
        return None
    channel, sep, conversation_id = bound.partition(":")
    return (channel, conversation_id) if sep and conversation_id else None
