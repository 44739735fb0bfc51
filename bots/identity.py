"""Who is calling, from proof only: the gateway's credentials and what each one proves.

Nothing a caller types becomes an identity. A caller is one of:

- a **guest**: a session the gateway issued (``POST /api/session``, a ``fds_`` token); its
  actor is ``guest:<sender>`` with the role ``guest``, and it can never be linked to a user;
- a **site user**: a token signed by the site that embeds the widget or calls the REST channel
  (a JWT with ``sub``, ``exp`` and optionally ``name`` and ``email``, HMAC or public-key signed,
  see docs/security.md); its actor is ``site:<sub>``, with the roles of the management user
  that identity is linked to (plain ``user`` otherwise);
- an **API key** holder (``fdk_...``, issued by management): the actor ``user:<handle>`` of the
  key's user, with that user's roles;
- a **Slack user**, proven by Slack's request signature (``bots.slack``): ``slack:<user id>``.

Roles come from management (``RoleResolver``); the actor, its roles and a verified email go to
the services inside a claim the gateway signs (``events.claims``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from events.claims import GUEST_ROLE
from events.envelope import Actor
from events.errors import FrontdoorError

#: API keys start with this (management issues them).
API_KEY_PREFIX = "fdk_"
#: Web/REST session tokens the gateway issues start with this.
SESSION_TOKEN_PREFIX = "fds_"
#: Actor id prefixes by what proved them.
GUEST_PREFIX = "guest:"
SITE_PREFIX = "site:"
SLACK_PREFIX = "slack:"

CredentialKind = Literal["guest", "site", "api_key", "anonymous"]


class Unauthenticated(FrontdoorError):
    """No credential, or one that proves nothing (the message says which and why)."""


@dataclass(frozen=True)
class Principal:
    """What a credential proved: the actor (roles resolved or not yet), a verified email, and
    the namespace its conversations live in (a caller never reaches another's)."""

    actor: Actor
    kind: CredentialKind
    #: the conversation (``guest``: its session's sender) or the prefix of its conversations
    scope: str
    email: str | None = None

    @property
    def limit_key(self) -> str:
        """The rate-limit key of this caller (not something the caller picks freely)."""
        return self.actor.id


def guest_principal(sender: str) -> Principal:
    """The guest of a gateway-issued session whose conversation is ``sender``."""
    return Principal(
        actor=Actor(id=f"{GUEST_PREFIX}{sender}", roles=(GUEST_ROLE,)), kind="guest", scope=sender
    )


@dataclass(frozen=True)
class SiteUser:
    """A site's end user, as its signed token says."""

    subject: str
    name: str | None
    email: str | None
    expires_at: int

    @property
    def actor_id(self) -> str:
        """``site:<sub>``."""
        return f"{SITE_PREFIX}{self.subject}"

    def principal(self, scope: str | None = None) -> Principal:
        """The principal of this user (roles resolved later)."""
        return Principal(
            actor=Actor(id=self.actor_id, name=self.name),
            kind="site",
            scope=scope or self.actor_id,
            email=self.email,
        )


_HMAC = ["HS256", "HS384", "HS512"]
_RSA = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
_EC = ["ES256", "ES384", "ES512"]


class SiteTokenVerifier:
    """Verifies end-user tokens signed by the embedding site (identity verification).

    Configure a shared secret (HMAC, ``HS256``) and/or a public key (RSA, EC or Ed25519 PEM);
    each key only verifies its own family of algorithms, so a public key can never be used as an
    HMAC secret. ``exp`` and ``sub`` are required; a token may not live longer than
    ``max_lifetime`` seconds; ``iss`` and ``aud`` are checked when configured.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key_pem: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        max_lifetime: int = 24 * 3600,
        leeway: float = 30.0,
    ) -> None:
        if not secret and not public_key_pem:
            raise ValueError("a site token verifier needs a secret or a public key")
        if secret is not None and len(secret) < 32:
            raise ValueError("the site token secret must be at least 32 characters long")
        self._keys: list[tuple[Any, list[str]]] = []
        if secret:
            self._keys.append((secret, _HMAC))
        if public_key_pem:
            key = serialization.load_pem_public_key(public_key_pem.encode())
            if isinstance(key, RSAPublicKey):
                self._keys.append((key, _RSA))
            elif isinstance(key, EllipticCurvePublicKey):
                self._keys.append((key, _EC))
            elif isinstance(key, Ed25519PublicKey):
                self._keys.append((key, ["EdDSA"]))
            else:
                raise ValueError("the site token public key must be RSA, EC or Ed25519")
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime
        self._leeway = leeway

    def verify(self, token: str, now: float) -> SiteUser:
        """The user the token proves, or ``Unauthenticated`` with the reason."""
        if len(token) > 8192:
            raise Unauthenticated("the user token is too long")
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the user token is not a JWT") from exc
        for key, algorithms in self._keys:
            if alg in algorithms:
                return self._decode(token, key, algorithms, now)
        raise Unauthenticated(f"the user token's algorithm {str(alg)[:16]!r} is not accepted")

    def _decode(self, token: str, key: Any, algorithms: list[str], now: float) -> SiteUser:
        require = (
            ["exp", "sub"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        )
        try:
            body = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": require, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the user token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the user token is not valid ({type(exc).__name__})") from exc
        expires = int(body["exp"])
        if expires - now > self._max_lifetime + self._leeway:
            raise Unauthenticated(
                f"the user token lives too long (at most {self._max_lifetime} s are accepted)"
            )
        subject = body["sub"]
        if not isinstance(subject, str) or not 1 <= len(subject) <= 128:
            raise Unauthenticated("the user token's 'sub' must be a string of 1-128 characters")
        name, email = body.get("name"), body.get("email")
        return SiteUser(
            subject=subject,
            name=name[:256] if isinstance(name, str) and name.strip() else None,
            email=email[:320] if isinstance(email, str) and "@" in email else None,
            expires_at=expires,
        )
