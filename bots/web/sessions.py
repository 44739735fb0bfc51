"""Web sessions: an unguessable sender id inside a signed, expiring token (itsdangerous)."""

from __future__ import annotations

import re
import secrets

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from events.errors import FrontdoorError

_SENDER = re.compile(r"^w-[0-9a-f]{32}$")


class InvalidSession(FrontdoorError):
    """The token is missing, forged, malformed or expired."""


class SessionSigner:
    """Issues and verifies session tokens."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="frontdoor.web.session")
        self.max_age_seconds = max_age_seconds

    @staticmethod
    def new_sender() -> str:
        """A fresh random sender id (the web conversation id)."""
        return "w-" + secrets.token_hex(16)

    def issue(self, sender: str | None = None) -> tuple[str, str]:
        """``(token, sender)`` for ``sender`` (a new one by default)."""
        sender = sender or self.new_sender()
        return self._serializer.dumps({"s": sender}), sender

    def verify(self, token: str | None) -> str:
        """The sender inside a valid token; raise ``InvalidSession`` otherwise."""
        if not token:
            raise InvalidSession("missing session token")
        try:
            data = self._serializer.loads(token, max_age=self.max_age_seconds)
        except SignatureExpired as exc:
            raise InvalidSession("session token expired") from exc
        except BadSignature as exc:
            raise InvalidSession("invalid session token") from exc
        sender = data.get("s") if isinstance(data, dict) else None
        if not isinstance(sender, str) or not _SENDER.match(sender):
            raise InvalidSession("invalid session token")
        return sender
