"""Identities (``channel:value``) and API keys: parsing, hashing, generating.

Only identities something proves can be linked to a user: ``slack`` (Slack signs every request),
``site`` (a user token signed by the site that embeds the widget or calls the REST channel) and
``email``. Widget and REST guests (``guest:...``) are never linked: their ids are sessions the
gateway issued, not people.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

#: Kinds of identity a user can be linked to (``api`` keys are issued, not linked).
IDENTITY_CHANNELS: Final = ("slack", "site", "email", "api")
#: Actor id prefixes (``events.envelope.Actor``) that name a linkable identity.
LINKABLE_ACTOR_PREFIXES: Final = ("slack", "site", "email")
#: API keys start with this, so they are recognisable in logs and secret scanners.
API_KEY_PREFIX: Final = "fdk_"


def parse_identity(raw: str) -> tuple[str, str]:
    """``"slack:U123"`` -> ``("slack", "U123")``; raise ``ValueError`` with the reason otherwise."""
    text = raw.strip()
    channel, sep, value = text.partition(":")
    channel = channel.strip().lower()
    value = value.strip()
    if not sep or not value:
        raise ValueError(f"identity {raw!r} must look like 'channel:id', e.g. 'slack:U123'")
    if channel not in IDENTITY_CHANNELS:
        raise ValueError(
            f"identity {raw!r}: unknown channel {channel!r} (use {', '.join(IDENTITY_CHANNELS)})"
        )
    if channel == "email":
        value = value.lower()
    return channel, value


def hash_api_key(key: str) -> str:
    """SHA-256 hex of an API key (keys are long random strings, so a plain hash is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    """A fresh random API key (shown once; only its hash is stored)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)
