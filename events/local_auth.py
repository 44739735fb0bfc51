"""Authentication of the embedded nats-server (``frontdoor up``): one credential per component.

On the first start a random password per component (``events.compartments.components``) is
written to ``<nats dir>/credentials/<component>`` (directory 0700, files 0600); every start
writes the server's config ``<nats dir>/nats-server.conf`` (0600) from the same renderer as the
deploy config, with these passwords in it, and the server runs with ``-c`` so that no client
gets in without one. Each component then connects with its own credential
(``LocalCredentials.url``): the same compartments as in a deployment.

Rotating a component's password: ``rotate(component)`` (``frontdoor nats rotate``) writes a new
one; it takes effect at the next start of ``frontdoor up``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

from events import compartments
from events.embedded import EmbeddedNats
from events.errors import FrontdoorError

CREDENTIALS_DIR: Final = "credentials"
CONFIG_FILE: Final = "nats-server.conf"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class CredentialsMissing(FrontdoorError):
    """A component's credential is not in the data directory (the message says why)."""


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (atomic rename, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


def with_credentials(url: str, user: str, password: str) -> str:
    """``nats://host:port`` (each of a comma list) with ``user:password@`` in it."""
    out = []
    for one in url.split(","):
        split = urlsplit(one.strip())
        host = split.netloc.rsplit("@", 1)[-1]
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
        out.append(urlunsplit(split._replace(netloc=netloc)))
    return ",".join(out)


def has_credentials(url: str) -> bool:
    """True when every server of ``url`` carries a user (and password) or a token."""
    servers = [u.strip() for u in url.split(",") if u.strip()]
    if not servers:
        return False
    for one in servers:
        split = urlsplit(one if "://" in one else f"nats://{one}")
        if not split.username:
            return False
    return True


@dataclass(frozen=True)
class LocalCredentials:
    """The components' passwords kept in ``folder`` (``<nats dir>/credentials``)."""

    folder: Path
    passwords: Mapping[str, str]

    @classmethod
    def ensure(cls, nats_dir: Path, components: Iterable[str]) -> LocalCredentials:
        """The credentials of ``nats_dir``; a missing one is generated (first start)."""
        folder = nats_dir / CREDENTIALS_DIR
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        passwords: dict[str, str] = {}
        for component in components:
            path = folder / _checked(component)
            if not path.is_file() or not path.read_text().strip():
                _write_private(path, secrets.token_urlsafe(32) + "\n")
            passwords[component] = path.read_text().strip()
        return cls(folder, passwords)

    @classmethod
    def load(cls, nats_dir: Path, component: str) -> LocalCredentials:
        """Only ``component``'s credential (a command attaching to a running ``up``)."""
        path = nats_dir / CREDENTIALS_DIR / _checked(component)
        try:
            password = path.read_text().strip()
        except OSError as exc:
            raise CredentialsMissing(
                f"no NATS credential for {component} in {path.parent} ({exc.strerror}): is this "
                "the data directory of a running `frontdoor up`?"
            ) from None
        if not password:
            raise CredentialsMissing(f"the NATS credential {path} is empty")
        return cls(path.parent, {component: password})

    def url(self, component: str, server_url: str) -> str:
        """``server_url`` with ``component``'s user and password (a secret: never log it)."""
        return with_credentials(server_url, component, self.passwords[component])

    def rotate(self, component: str) -> None:
        """A new password for ``component`` (used from the next start of the server)."""
        _write_private(self.folder / _checked(component), secrets.token_urlsafe(32) + "\n")


def _checked(component: str) -> str:
    if not component or not set(component) <= _NAME_OK:
        raise ValueError(f"invalid component name {component!r}")
    return component


def render_embedded_config(passwords: Mapping[str, str], services: Iterable[str]) -> str:
    """The embedded server's config: the compartments with these passwords written in."""
    return (
        "# Written by Frontdoor at every start of `frontdoor up` (events/local_auth.py); the\n"
        "# permissions are events/compartments.py's, as in deploy/nats/nats-server.conf.\n"
        + compartments.render_accounts(compartments.literal_password(passwords), services=services)
    )


def secured_embedded(
    nats_dir: Path, services: Iterable[str], **kwargs: object
) -> tuple[EmbeddedNats, LocalCredentials]:
    """An embedded nats-server that admits only the components' credentials (not started)."""
    names = list(services)
    credentials = LocalCredentials.ensure(nats_dir, compartments.components(names))
    config = nats_dir / CONFIG_FILE
    _write_private(config, render_embedded_config(credentials.passwords, names))
    server = EmbeddedNats(nats_dir, config_file=config, **kwargs)  # type: ignore[arg-type]
    return server, credentials
