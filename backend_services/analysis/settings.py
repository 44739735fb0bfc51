"""Settings of the analysis service (pydantic-settings; built in ``on_startup``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AnalysisSettings(BaseSettings):
    """Where chart URLs point and how long a query waits for the views to catch up."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    public_url: str = Field(
        default="",
        validation_alias=AliasChoices("FRONTDOOR_PUBLIC_URL"),
        description="Base URL of the services' HTTP app, for chart links (empty: relative URLs)",
    )
    http_prefix: str = Field(
        default="/services",
        validation_alias=AliasChoices("FRONTDOOR_SERVICES_HTTP_PREFIX"),
        description="Where the services' HTTP routes are mounted",
    )
    catchup_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("FRONTDOOR_ANALYSIS_CATCHUP_TIMEOUT"),
        description="How long a query waits for the views to reach the bus's last event",
    )
