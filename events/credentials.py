"""NATS credentials: the generated passwords of the embedded server, and URLs that carry them.

``NatsCredentials.ensure(directory)`` keeps one random password per component in
``directory/<component>`` (file mode 0600, directory 0700), creating the missing ones, so a
restart keeps them and deleting one file rotates that component's password at the next start.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from events.compartments import COMPONENTS
from events.errors import BusError

_PASSWORD = re.compile(r"^[A-Za-z0-9_-]{32,}$")
_USER = re.compile(r"^[A-Za-z0-9_-]+$")


class CredentialsError(BusError):
    """A credential file is missing or unreadable."""


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600), replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _private_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(directory.stat().st_mode) & 0o077:
        directory.chmod(0o700)


def _read_password(path: Path) -> str:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)  # someone loosened it: the owner only, again
    value = path.read_text().strip()
    if not _PASSWORD.match(value):
        raise CredentialsError(
            f"{path} does not hold a generated password; delete it to generate a new one"
        )
    return value


class NatsCredentials:
    """The passwords of the embedded server's users (one per component)."""

    def __init__(self, directory: Path, passwords: Mapping[str, str]) -> None:
        self.directory = directory
        self._passwords = dict(passwords)

    @classmethod
    def ensure(cls, directory: Path, users: Iterable[str] = COMPONENTS) -> NatsCredentials:
        """Read the passwords in ``directory``, generating (0600) the ones that are missing."""
        _private_dir(directory)
        passwords: dict[str, str] = {}
        for user in users:
            path = directory / user
            if not path.exists():
                write_private(path, secrets.token_urlsafe(32) + "\n")
            passwords[user] = _read_password(path)
        return cls(directory, passwords)

    @classmethod
    def load(cls, directory: Path, users: Iterable[str]) -> NatsCredentials:
        """Read existing passwords only (``CredentialsError`` when one is missing)."""
        passwords: dict[str, str] = {}
        for user in users:
            path = directory / user
            try:
                passwords[user] = _read_password(path)
            except OSError as exc:
                raise CredentialsError(
                    f"no NATS credential for {user!r} in {directory}: {exc.strerror or exc}"
                ) from None
        return cls(directory, passwords)

    @property
    def passwords(self) -> Mapping[str, str]:
        """user -> password (secret: never log it)."""
        return dict(self._passwords)

    def password(self, user: str) -> str:
        """The password of ``user``."""
        return self._passwords[user]

    def url(self, server_url: str, user: str) -> str:
        """``server_url`` (one or a comma list) with ``user``'s credentials in each URL."""
        return with_credentials(server_url, user, self.password(user))

    def __repr__(self) -> str:  # never show the passwords
        return f"NatsCredentials({str(self.directory)!r}, users={sorted(self._passwords)})"


def with_credentials(server_url: str, user: str, password: str) -> str:
    """Put ``user:password@`` into each URL of ``server_url`` (replacing any there)."""
    if not _USER.match(user) or not _PASSWORD.match(password):
        raise ValueError("user and password must be URL-safe tokens")
    out = []
    for one in server_url.split(","):
        one = one.strip()
        if not one:
            continue
        if "://" not in one:
            one = f"nats://{one}"
        parts = urlsplit(one)
        host = parts.netloc.rpartition("@")[2]
        out.append(urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}")))
    return ",".join(out)


def url_user(url: str) -> str | None:
    """The NATS user a URL (the first of a comma list) logs in as; ``None`` without a
    user *and* password (a bare token is a secret, not a user name)."""
    first = url.split(",")[0].strip()
    if "://" not in first:
        first = f"nats://{first}"
    parts = urlsplit(first)
    if parts.username and parts.password and _USER.match(parts.username):
        return parts.username
    return None


def has_credentials(url: str) -> bool:
    """True when every URL of ``url`` carries a user and password, or a token."""
    for one in url.split(","):
        one = one.strip()
        if not one:
            continue
        if "://" not in one:
            one = f"nats://{one}"
        if not urlsplit(one).username:
            return False
    return True
