"""Where ``frontdoor up`` keeps its embedded nats-server, and how other commands attach to it.

``<data dir>/nats/``               the server's store, log and configuration (mode 0600)
``<data dir>/nats/credentials/``   one generated password per component (0600, directory 0700)
``<data dir>/nats-server.pid|url`` written while ``up`` runs

Commands that attach to a running ``up`` (``frontdoor doctor``, ``frontdoor nlu publish``) when
``NATS_URL`` is unset connect as the ``cli`` user with its credential from the data dir.
"""

from __future__ import annotations

from pathlib import Path

from events.compartments import CLI
from events.credentials import CredentialsError, NatsCredentials

NATS_PID_FILE = "nats-server.pid"
NATS_URL_FILE = "nats-server.url"


def server_dir(data_dir: Path) -> Path:
    """The embedded server's directory (store, log, configuration)."""
    return data_dir / "nats"


def credentials_dir(data_dir: Path) -> Path:
    """Where the embedded server's generated passwords are kept."""
    return server_dir(data_dir) / "credentials"


def attach_url(data_dir: Path) -> str | None:
    """The URL, with the ``cli`` credential, of the embedded nats-server of a ``frontdoor up``
    running with ``data_dir``; ``None`` when none runs there. Secret: it carries a password."""
    url_file = data_dir / NATS_URL_FILE
    if not url_file.is_file():
        return None
    url = url_file.read_text().strip()
    try:
        credentials = NatsCredentials.load(credentials_dir(data_dir), [CLI])
    except CredentialsError:
        return url  # no cli credential there: the server will say whether it needs one
    return credentials.url(url, CLI)
