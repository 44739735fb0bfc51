"""Settings of the web gateway (env prefix ``FRONTDOOR_``), built by the caller, never at import."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bots.identity import SiteTokenVerifier
from bots.web.clientaddr import IPNetwork, parse_networks
from events import subjects
from events.streams import BUCKETS

#: The longest rate window shared counters keep exactly: a key must outlive its window and the
#: one before it (the TTL of the KV bucket ``fd_limits``).
MAX_SHARED_WINDOW_SECONDS = (BUCKETS[subjects.LIMITS_BUCKET].ttl or 0.0) / 2


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
    rate_limit: int = Field(
        default=20,
        ge=1,
        description="Messages (and API calls) per window per caller: per session, verified "
        "user or API key",
    )
    rate_window_seconds: float = Field(default=10.0, gt=0)
    address_rate_limit: int = Field(
        default=600, ge=1, description="Requests and messages per window per client address"
    )
    address_rate_window_seconds: float = Field(default=60.0, gt=0)
    session_rate_limit: int = Field(
        default=60, ge=1, description="New sessions (POST /api/session) per window per address"
    )
    session_rate_window_seconds: float = Field(default=60.0, gt=0)
    auth_failure_limit: int = Field(
        default=20,
        ge=1,
        description="Failed authentications (401s) per window per address; then every "
        "request of that address is a 429 until the window has passed",
    )
    auth_failure_window_seconds: float = Field(default=300.0, gt=0)
    rate_limit_max_keys: int = Field(
        default=100_000, ge=100, description="Keys the in-memory rate limits keep at most"
    )
    rate_limit_storage: Literal["memory", "nats"] = Field(
        default="memory",
        description="Where the rate limits are counted: memory (this process; one gateway) or "
        "nats (KV bucket fd_limits, shared by every gateway replica)",
    )
    rate_limit_timeout_seconds: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="nats storage: a limit check waits this long for NATS KV; then this "
        "process counts on its own until NATS answers again (fail open)",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma list of CIDRs of reverse proxies whose X-Forwarded-For is believed "
        "(e.g. 10.0.0.0/8,127.0.0.1); empty: the peer address is the client",
    )
    ws_max_connections: int = Field(default=10_000, ge=1, description="Open WebSockets in all")
    ws_max_connections_per_address: int = Field(
        default=50, ge=1, description="Open WebSockets per client address"
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=256, description="Nesting depth of JSON bodies and frames"
    )
    rest_turn_timeout: float = Field(default=10.0, gt=0, description="REST waits this long")
    slow_turn_seconds: float = Field(
        default=10.0, gt=0, description="WebSocket: a 'working' note after this long"
    )
    rest_pending_max: int = Field(default=200, ge=1, description="Late replies kept per sender")
    rest_pending_ttl_seconds: float = Field(
        default=24 * 3600, gt=0, description="Late REST replies not fetched are dropped after"
    )
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

    @model_validator(mode="after")
    def _windows_fit_the_shared_counters(self) -> WebSettings:
        if self.rate_limit_storage == "nats":
            longest = max(
                self.rate_window_seconds,
                self.address_rate_window_seconds,
                self.session_rate_window_seconds,
                self.auth_failure_window_seconds,
            )
            if longest > MAX_SHARED_WINDOW_SECONDS:
                raise ValueError(
                    f"with FRONTDOOR_RATE_LIMIT_STORAGE=nats a rate window may last at most "
                    f"{MAX_SHARED_WINDOW_SECONDS:g} s (the counters' TTL is twice that), "
                    f"not {longest:g} s"
                )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        parse_networks(value.split(","))
        return value

    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        """``trusted_proxies`` as networks."""
        return parse_networks(self.trusted_proxies.split(","))

    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` as a list (empty: no cross-origin access)."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    resolve_roles: bool = Field(default=True, description="Ask management for actor roles")
    docs: bool = Field(
        default=True, description="Serve /docs and /openapi.json (FRONTDOOR_DOCS=off closes them)"
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, /metrics answers only 'Authorization: Bearer <this token>'",
    )
    agent_workspace: bool = Field(
        default=True,
        description="Serve the agent workspace at /agent (hand-offs are then answered there "
        "even without Slack); FRONTDOOR_AGENT_WORKSPACE=off closes it",
    )
    agent_session_max_age_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        le=24 * 3600,
        description="How long an agent's sign-in lasts (sign-outs are shared for at most a day)",
    )
    agent_cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="The agent session cookie's Secure flag: 'auto' sets it on https requests "
        "(behind a TLS-terminating proxy, set 'always')",
    )
    agent_rate_limit: int = Field(
        default=120, ge=1, description="Workspace API calls per rate window per agent"
    )
    agent_signin_failure_limit: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins per user name per auth failure window (the address's "
        "auth failure limit applies too)",
    )
