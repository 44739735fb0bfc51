"""Settings of the marketing service (pydantic-settings; built in ``on_startup``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MarketingSettings(BaseSettings):
    """Where the marketing data lives and how often scheduled campaigns are started."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FRONTDOOR_MARKETING_DATABASE_URL", "FRONTDOOR_DATABASE_URL"),
        description="SQLAlchemy async URL (may hold a password): postgresql+asyncpg://... "
        "or sqlite+aiosqlite:///...; default SQLite in the data dir",
    )
    data_dir: Path = Field(
        default=Path(".frontdoor"),
        validation_alias=AliasChoices("FRONTDOOR_DATA_DIR"),
        description="Local state; the default SQLite database is <data_dir>/marketing.db",
    )
    scheduler_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("FRONTDOOR_MARKETING_SCHEDULER_INTERVAL"),
        description="How often scheduled campaigns whose time has come are started",
    )

    def resolved_database_url(self) -> str:
        """Marketing's own URL, else the shared one, else SQLite in the data dir."""
        if self.database_url:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.data_dir / 'marketing.db').resolve()}"
