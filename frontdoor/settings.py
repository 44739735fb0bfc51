"""Settings of the composition root (``frontdoor up/serve/doctor``), built in main only.

Environment: ``NATS_URL`` (none: ``up`` starts an embedded nats-server), ``FRONTDOOR_DATA_DIR``,
``FRONTDOOR_HOST``, ``FRONTDOOR_PORT``, ``FRONTDOOR_DATABASE_URL`` (unset: one SQLite file per
service in the data dir), ``FRONTDOOR_LOG_FORMAT`` (console|json), ``FRONTDOOR_LOG_LEVEL``,
``FRONTDOOR_SERVICES`` (comma list to start only some services), ``FRONTDOOR_INTENT_TIMEOUT``,
``FRONTDOOR_NATS_ALLOW_ANONYMOUS`` (``serve`` against a NATS without authentication, for
development), ``FRONTDOOR_STREAMS_WAIT`` (how long a service waits for the gateway's streams).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontdoorSettings(BaseSettings):
    """Where NATS is, where data lives, where the gateway listens, how to log."""

    model_config = SettingsConfigDict(env_prefix="FRONTDOOR_", extra="ignore")

    nats_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NATS_URL", "FRONTDOOR_NATS_URL", "nats_url"),
        description="NATS server(s); unset: `frontdoor up` starts an embedded nats-server",
    )
    data_dir: Path = Field(default=Path(".frontdoor"), description="Local state (NATS store, DBs)")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database_url: SecretStr | None = Field(
        default=None,
        description="Shared service database URL; unset: each service has its own SQLite file "
        "in data_dir (services read FRONTDOOR_DATABASE_URL themselves)",
    )
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    services: str = Field(default="", description="Comma list of services to start (all: empty)")
    intent_timeout: float = Field(default=30.0, gt=0, description="Headless API reply wait (s)")
    nats_allow_anonymous: bool = Field(
        default=False,
        description="Let `serve` connect with a NATS_URL without credentials (a development "
        "server without authentication)",
    )
    streams_wait: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a service waits at start for the streams the gateway creates",
    )

    def nats(self) -> str | None:
        """The NATS URL (secret: it may carry credentials), or None."""
        return self.nats_url.get_secret_value() if self.nats_url else None

    def selected_services(self, registered: list[str]) -> list[str]:
        """The services to run: ``services`` if set (validated), else every registered one."""
        wanted = [s.strip() for s in self.services.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(registered))
        if unknown:
            raise ValueError(
                f"FRONTDOOR_SERVICES names unknown services {unknown}; "
                f"registered: {', '.join(registered)}"
            )
        return wanted or list(registered)


#: Passwords of the deploy examples (deploy/k8s/secrets.example.yaml): never real ones.
PLACEHOLDER_PASSWORDS = frozenset({"change-me", "changeme"})


def nats_credentials_problem(
    url: str, component: str, *, allow_anonymous: bool = False
) -> str | None:
    """Why ``serve <component>`` must not connect with ``url``, or ``None`` when it may.

    Every URL must carry ``user:password@`` (or a token) unless ``allow_anonymous``, and no
    password may be the deploy examples' placeholder.
    """
    for one in url.split(","):
        split = urlsplit(one.strip() if "://" in one else f"nats://{one.strip()}")
        if not split.username and not allow_anonymous:
            return (
                f"NATS_URL carries no credentials. Each component connects as its own NATS user: "
                f"set NATS_URL=nats://{component}:<password>@<host>:4222 (the password of "
                f"FD_NATS_{component.upper()}_PASSWORD in deploy/nats/nats-server.conf). For a "
                "development NATS without authentication set FRONTDOOR_NATS_ALLOW_ANONYMOUS=1."
            )
        if (split.password or "").lower() in PLACEHOLDER_PASSWORDS:
            return (
                "NATS_URL carries the placeholder password of the deploy examples: set the "
                f"real password of the NATS user {split.username!r}."
            )
    return None


def redact_url(url: str) -> str:
    """``nats://user:secret@host:4222`` -> ``nats://user:***@host:4222`` (safe to log)."""
    parts = []
    for one in url.split(","):
        split = urlsplit(one.strip())
        if split.password or (split.username and "@" in split.netloc):
            host = split.hostname or ""
            port = f":{split.port}" if split.port else ""
            user = split.username or ""
            netloc = f"{user}:***@{host}{port}" if split.password else f"***@{host}{port}"
            one = urlunsplit(split._replace(netloc=netloc))
        parts.append(one)
    return ",".join(parts)
