"""Management service settings (environment variables ``FRONTDOOR_*``), built at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend_services.management.lifecycle import PRIORITIES

#: Default SLA targets in minutes: priority -> (first response, resolution).
DEFAULT_FIRST_RESPONSE = {"urgent": 15, "high": 60, "normal": 240, "low": 480}
DEFAULT_RESOLUTION = {"urgent": 240, "high": 480, "normal": 1440, "low": 4320}


class ManagementSettings(BaseSettings):
    """Where the management data lives, who the first admins are, and the SLA targets."""

    model_config = SettingsConfigDict(env_prefix="FRONTDOOR_", extra="ignore")

    #: Frontdoor's data directory (the default SQLite file lives here).
    data_dir: Path = Path(".frontdoor")
    #: Shared database URL of the services (fallback of ``management_database_url``).
    database_url: SecretStr | None = None
    #: This service's own database URL (``sqlite+aiosqlite:///...``, ``postgresql+asyncpg://...``).
    management_database_url: SecretStr | None = None
    #: Comma list of identities that are made admins at start-up, e.g. ``slack:U123,web:alice``.
    admin_identities: str = ""
    #: Minutes to the first agent response, per priority.
    management_sla_first_response_minutes: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE)
    )
    #: Minutes to a solved ticket, per priority.
    management_sla_resolution_minutes: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_RESOLUTION)
    )
    #: How often the SLA checker looks for breaches (seconds; 0 disables the periodic checker).
    management_sla_check_seconds: float = Field(default=30.0, ge=0)
    #: Follow ``service.*`` events and ``$SRV`` discovery for ``services_status``.
    management_ops_enabled: bool = True

    @field_validator("management_sla_first_response_minutes", "management_sla_resolution_minutes")
    @classmethod
    def _complete_targets(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(PRIORITIES)
        if unknown:
            raise ValueError(f"unknown priorities {sorted(unknown)}; use {', '.join(PRIORITIES)}")
        if any(minutes <= 0 for minutes in value.values()):
            raise ValueError("SLA targets must be positive minutes")
        return value

    def resolved_database_url(self) -> str:
        """The URL to use: management's own, else the shared one, else SQLite in the data dir."""
        if self.management_database_url:
            return self.management_database_url.get_secret_value()
        if self.database_url:
            return self.database_url.get_secret_value()
        path = (self.data_dir / "management.db").resolve()
        return f"sqlite+aiosqlite:///{path}"

    def admin_identity_list(self) -> list[tuple[str, str]]:
        """``FRONTDOOR_ADMIN_IDENTITIES`` parsed into ``(channel, value)`` pairs."""
        from backend_services.management.identities import parse_identity

        return [parse_identity(item) for item in self.admin_identities.split(",") if item.strip()]
