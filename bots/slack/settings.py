"""Slack settings (pydantic-settings): secrets, Web API URL, channel -> bot mapping, hand-off.

Every secret can come from the environment or from a file (``SLACK_BOT_TOKEN_FILE``, ...; a
Kubernetes secret mounted as a file). Secrets are ``SecretStr`` and never logged. Build the
settings in ``main``/``create_app`` with ``SlackSettings()`` and call ``resolve()``: it reads the
files, checks that the configuration is whole and says clearly what is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from events.errors import FrontdoorError

DEFAULT_API_URL = "https://slack.com/api/"
_CHANNEL_ID = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,40}$")
_BOT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class SlackConfigError(FrontdoorError):
    """The Slack configuration is incomplete or malformed (raised at start-up)."""


SlackMode = Literal["off", "http", "socket"]


class SlackSettings(BaseSettings):
    """Slack channel configuration, read from the environment (and ``.env``)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    signing_secret_file: Path | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET_FILE"
    )
    bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    bot_token_file: Path | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN_FILE")
    app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    app_token_file: Path | None = Field(default=None, validation_alias="SLACK_APP_TOKEN_FILE")
    api_url: str = Field(
        default=DEFAULT_API_URL,
        validation_alias="SLACK_API_URL",
        description="Web API base URL (tests, GovSlack: https://slack-gov.com/api/)",
    )
    channel_bots: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        validation_alias="FRONTDOOR_SLACK_CHANNEL_BOTS",
        description="Which bot answers in which channel: 'C123:support,C456:ops'",
    )
    default_bot: str = Field(default="chatbot", validation_alias="FRONTDOOR_SLACK_DEFAULT_BOT")
    support_channel: str | None = Field(default=None, validation_alias="FRONTDOOR_SUPPORT_CHANNEL")
    socket_mode: bool = Field(
        default=False,
        validation_alias="FRONTDOOR_SLACK_SOCKET_MODE",
        description="Connect over Socket Mode (development) instead of serving /slack/events",
    )
    dedup_seconds: float = Field(
        default=15 * 60.0,
        ge=600.0,
        validation_alias="FRONTDOOR_SLACK_DEDUP_SECONDS",
        description="How long a Slack event id is remembered (Slack retries for ~5 minutes)",
    )
    thread_follow_seconds: float = Field(
        default=24 * 3600.0,
        ge=0.0,
        validation_alias="FRONTDOOR_SLACK_THREAD_FOLLOW_SECONDS",
        description="How long after its last message for the bot a thread is followed: "
        "messages in it are answered without a mention (0: always mention the bot)",
    )
    rate_limit_retries: int = Field(
        default=3, ge=0, le=10, validation_alias="FRONTDOOR_SLACK_RATE_LIMIT_RETRIES"
    )

    @field_validator("channel_bots", mode="before")
    @classmethod
    def _parse_channel_bots(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        mapping: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            channel, sep, bot = item.partition(":")
            channel, bot = channel.strip(), bot.strip()
            if not sep or not _CHANNEL_ID.match(channel) or not _BOT_NAME.match(bot):
                raise ValueError(
                    f"FRONTDOOR_SLACK_CHANNEL_BOTS item {item!r} is not 'CHANNEL_ID:bot' "
                    "(e.g. 'C0123ABC:support')"
                )
            mapping[channel] = bot
        return mapping

    @field_validator("api_url")
    @classmethod
    def _api_url_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("SLACK_API_URL must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    def resolve(self, *, socket_mode: bool | None = None) -> ResolvedSlack | None:
        """Read secret files, check completeness; ``None`` when Slack is not configured at all.

        HTTP mode needs the signing secret and the bot token; Socket Mode needs the bot token
        and the app token. Anything in between raises ``SlackConfigError`` naming what is
        missing (never the secret values).
        """
        socket_mode = self.socket_mode if socket_mode is None else socket_mode
        signing = _secret(self.signing_secret, self.signing_secret_file, "SLACK_SIGNING_SECRET")
        bot = _secret(self.bot_token, self.bot_token_file, "SLACK_BOT_TOKEN")
        app = _secret(self.app_token, self.app_token_file, "SLACK_APP_TOKEN")
        if socket_mode:
            needed = {"SLACK_BOT_TOKEN": bot, "SLACK_APP_TOKEN": app}
        else:
            needed = {"SLACK_SIGNING_SECRET": signing, "SLACK_BOT_TOKEN": bot}
        present = [name for name, value in needed.items() if value is not None]
        if not present and not socket_mode:
            if self.support_channel:
                raise SlackConfigError(
                    "FRONTDOOR_SUPPORT_CHANNEL is set but Slack is not configured: "
                    "set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (or their _FILE variants)"
                )
            return None
        missing = [name for name, value in needed.items() if value is None]
        if missing:
            mode = "Socket Mode" if socket_mode else "the Slack Events API"
            have = ", ".join(present) or "nothing"
            raise SlackConfigError(
                f"Slack is only partly configured for {mode}: {have} is set but "
                f"{', '.join(missing)} is missing (set it, or its _FILE variant, or unset the "
                "others to run without Slack)"
            )
        assert bot is not None
        if not bot.get_secret_value().startswith("xoxb-"):
            raise SlackConfigError("SLACK_BOT_TOKEN must be a bot token (it starts with 'xoxb-')")
        if app is not None and not app.get_secret_value().startswith("xapp-"):
            raise SlackConfigError(
                "SLACK_APP_TOKEN must be an app-level token (it starts with 'xapp-')"
            )
        return ResolvedSlack(
            mode="socket" if socket_mode else "http",
            signing_secret=signing,
            bot_token=bot,
            app_token=app,
            api_url=self.api_url,
            channel_bots=dict(self.channel_bots),
            default_bot=self.default_bot,
            support_channel=self.support_channel,
            dedup_seconds=self.dedup_seconds,
            thread_follow_seconds=self.thread_follow_seconds,
            rate_limit_retries=self.rate_limit_retries,
        )


def _secret(value: SecretStr | None, file: Path | None, name: str) -> SecretStr | None:
    if value is not None and file is not None:
        raise SlackConfigError(f"set {name} or {name}_FILE, not both")
    if file is None:
        return value if value is None or value.get_secret_value().strip() else None
    try:
        text = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SlackConfigError(f"{name}_FILE={file} cannot be read: {exc.strerror}") from None
    if not text:
        raise SlackConfigError(f"{name}_FILE={file} is empty")
    return SecretStr(text)


@dataclass(frozen=True)
class ResolvedSlack:
    """A complete, checked Slack configuration (what the Slack channel is built from)."""

    mode: SlackMode
    signing_secret: SecretStr | None
    bot_token: SecretStr
    app_token: SecretStr | None
    api_url: str
    channel_bots: dict[str, str]
    default_bot: str
    support_channel: str | None
    dedup_seconds: float
    rate_limit_retries: int
    thread_follow_seconds: float

    def bot_for(self, channel_id: str) -> str:
        """The bot that answers in ``channel_id`` (the default bot when unmapped)."""
        return self.channel_bots.get(channel_id, self.default_bot)
