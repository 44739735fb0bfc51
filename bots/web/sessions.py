"""Web sessions: an unguessable conversation id inside a signed, expiring token (itsdangerous).

A session is a guest's, or a site user's when the site's signed user token was shown when it was
issued; then it carries the user (``site:<sub>``, name, verified email) and expires no later than
that user token. Tokens start with ``fds_`` and travel in ``Authorization: Bearer`` (REST) or
the WebSocket's first frame, never in a URL.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from cachetools import LRUCache
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from bots.identity import SESSION_TOKEN_PREFIX, Principal, SiteUser, guest_principal
from events.errors import FrontdoorError

_SENDER = re.compile(r"^w-[0-9a-f]{32}$")


class InvalidSession(FrontdoorError):
    """The token is missing, forged, malformed or expired."""


@dataclass(frozen=True)
class Session:
    """A verified session: its conversation id, and the site user when it has one."""

    sender: str
    user: SiteUser | None = None

    @property
    def principal(self) -> Principal:
        """Who the session's holder is."""
        if self.user is None:
            return guest_principal(self.sender)
        return self.user.principal(scope=self.sender)


class SessionSigner:
    """Issues and verifies session tokens."""

    def __init__(self, secret: str, max_age_seconds: int, cache_size: int = 10_000) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="frontdoor.web.session")
        self.max_age_seconds = max_age_seconds
        # Tokens verified before, with the time they stop being valid: a session's every turn
        # would otherwise check its signature again. Keyed by the exact token string.
        self._verified: LRUCache[str, tuple[Session, float]] = LRUCache(cache_size)

    @staticmethod
    def new_sender() -> str:
        """A fresh random sender id (the web conversation id)."""
        return "w-" + secrets.token_hex(16)

    def issue(self, sender: str | None = None, user: SiteUser | None = None) -> tuple[str, Session]:
        """``(token, session)`` for ``sender`` (a new one by default), of ``user`` if given."""
        sender = sender or self.new_sender()
        data: dict[str, object] = {"s": sender}
        if user is not None:
            data.update({"u": user.subject, "x": user.expires_at})
            if user.name:
                data["n"] = user.name
            if user.email:
                data["e"] = user.email
        return SESSION_TOKEN_PREFIX + self._serializer.dumps(data), Session(sender, user)

    def expires_in(self, session: Session, now: float | None = None) -> int:
        """Seconds the session's token is valid for."""
        if session.user is None:
            return self.max_age_seconds
        now = time.time() if now is None else now
        return max(0, min(self.max_age_seconds, int(session.user.expires_at - now)))

    def verify(self, token: str | None, now: float | None = None) -> Session:
        """The session inside a valid token; raise ``InvalidSession`` otherwise."""
        if not token:
            raise InvalidSession("missing session token")
        now = time.time() if now is None else now
        cached = self._verified.get(token)
        if cached is not None and now < cached[1]:
            return cached[0]
        session, valid_until = self._check(token, now)
        self._verified[token] = (session, valid_until)
        return session

    def _check(self, token: str, now: float) -> tuple[Session, float]:
        """The session in ``token`` and when the token stops being valid (signature checked)."""
        if not token.startswith(SESSION_TOKEN_PREFIX) or len(token) > 2048:
            raise InvalidSession("invalid session token")
        try:
            data, signed_at = self._serializer.loads(
                token[len(SESSION_TOKEN_PREFIX) :],
                max_age=self.max_age_seconds,
                return_timestamp=True,
            )
        except SignatureExpired as exc:
            raise InvalidSession("session token expired") from exc
        except BadSignature as exc:
            raise InvalidSession("invalid session token") from exc
        valid_until = signed_at.timestamp() + self.max_age_seconds
        if valid_until < now:
            raise InvalidSession("session token expired")
        sender = data.get("s") if isinstance(data, dict) else None
        if not isinstance(sender, str) or not _SENDER.match(sender):
            raise InvalidSession("invalid session token")
        subject = data.get("u")
        if subject is None:
            return Session(sender), valid_until
        expires = data.get("x")
        if not isinstance(subject, str) or not isinstance(expires, int):
            raise InvalidSession("invalid session token")
        if expires < now:
            raise InvalidSession("the user token of this session expired")
        name, email = data.get("n"), data.get("e")
        user = SiteUser(
            subject=subject,
            name=name if isinstance(name, str) else None,
            email=email if isinstance(email, str) else None,
            expires_at=expires,
        )
        return Session(sender, user), min(valid_until, float(expires))
