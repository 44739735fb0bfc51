"""Agents' passwords: Argon2id hashes (argon2-cffi), checked in constant work.

Only the hash is stored (``mgmt_users.password_hash``). A check of an unknown user or of a user
without a password still verifies against a fixed hash, so the answer's timing does not tell
which handles exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: At least this many characters (NIST SP 800-63B); at most 1024 (hashing cost is bounded).
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024

_hasher = PasswordHasher()  # Argon2id, the library's (RFC 9106 low-memory) parameters
_DUMMY = _hasher.hash("frontdoor: no such user, no such password")


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (salted; the parameters are inside the hash)."""
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored`` (``None``: no password set, always False)."""
    try:
        _hasher.verify(stored or _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with older parameters than the current ones."""
    return _hasher.check_needs_rehash(stored)
