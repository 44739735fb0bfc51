"""Settings of the web gateway (env prefix ``FRONTDOOR_``), built by the caller, never at import."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bots.identity import SiteTokenVerifier


class WebSettings(BaseSettings):
    """Limits, timeouts and secrets of the REST/WebSocket channels."""

    model_config = SettingsConfigDict(env_prefix="FRONTDOOR_", extra="ignore")

    session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="Signs web session tokens; set it so tokens survive a restart",
    )
    session_max_age_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    max_message_chars: int = Field(default=2000, ge=1, le=4000)  # message.received holds 4000
    max_body_bytes: int = Field(default=64 * 1024, ge=256)
    rate_limit: int = Field(default=20, ge=1, description="Messages per window per sender")
    rate_window_seconds: float = Field(default=10.0, gt=0)
    rest_turn_timeout: float = Field(default=10.0, gt=0, description="REST waits this long")
    slow_turn_seconds: float = Field(
        default=10.0, gt=0, description="WebSocket: a 'working' note after this long"
    )
    rest_pending_max: int = Field(default=200, ge=1, description="Late replies kept per sender")
    frame_ancestors: str = Field(default="'self'", description="CSP frame-ancestors")
    cors_origins: str = Field(
        default="",
        description="Comma list of other sites' origins allowed to embed the widget "
        "(e.g. https://shop.example.com), or * for any; empty: same origin only",
    )
    experts_file: Path | None = Field(default=None, description="YAML list of expert bots")

    site_token_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret (>= 32 chars) the embedding site signs user tokens with "
        "(HS256); see docs/security.md",
    )
    site_token_public_key: str | None = Field(
        default=None, description="PEM public key (RSA, EC or Ed25519) of the site's user tokens"
    )
    site_token_public_key_file: Path | None = Field(
        default=None, description="File with that PEM public key"
    )
    site_token_issuer: str | None = Field(default=None, description="Required 'iss' when set")
    site_token_audience: str | None = Field(default=None, description="Required 'aud' when set")
    site_token_max_lifetime_seconds: int = Field(
        default=24 * 3600, ge=60, description="A user token may not expire later than this"
    )
    api_anonymous: bool = Field(
        default=False,
        description="Let callers without an API key use /api/intents (as the shared guest "
        "'guest:anonymous', role guest); off by default",
    )

    def site_token_verifier(self) -> SiteTokenVerifier | None:
        """The verifier of site user tokens, or ``None`` when no key is configured."""
        public_key = self.site_token_public_key
        if public_key is None and self.site_token_public_key_file is not None:
            public_key = self.site_token_public_key_file.read_text()
        secret = self.site_token_secret.get_secret_value() if self.site_token_secret else None
        if not secret and not public_key:
            return None
        return SiteTokenVerifier(
            secret=secret or None,
            public_key_pem=public_key,
            issuer=self.site_token_issuer,
            audience=self.site_token_audience,
            max_lifetime=self.site_token_max_lifetime_seconds,
        )

    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` as a list (empty: no cross-origin access)."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    resolve_roles: bool = Field(default=True, description="Ask management for actor roles")
