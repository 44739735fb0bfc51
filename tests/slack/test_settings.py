"""Slack configuration: whole, absent, partial (a clear error), secrets from files, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.slack import SlackConfigError, SlackSettings, attach_slack
from bots.web.app import create_gateway_app
from events.bus import Bus
from tests.bots.conftest import make_settings
from tests.claims import TEST_ISSUER
from tests.slack.conftest import BOT_TOKEN, SECRET, RulesDialogue, Turn

_SLACK_ENV = (
    "SLACK_SIGNING_SECRET",
    "SLACK_SIGNING_SECRET_FILE",
    "SLACK_BOT_TOKEN",
    "SLACK_BOT_TOKEN_FILE",
    "SLACK_APP_TOKEN",
    "SLACK_APP_TOKEN_FILE",
    "SLACK_API_URL",
    "FRONTDOOR_SUPPORT_CHANNEL",
    "FRONTDOOR_SLACK_CHANNEL_BOTS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SLACK_ENV:
        monkeypatch.delenv(name, raising=False)


def test_not_configured_means_off() -> None:
    assert SlackSettings().resolve() is None


def test_whole_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", "https://slack-gov.com/api")
    monkeypatch.setenv("FRONTDOOR_SLACK_CHANNEL_BOTS", "C123:support, C456:ops")
    config = SlackSettings().resolve()
    assert config is not None and config.mode == "http"
    assert config.api_url == "https://slack-gov.com/api/"
    assert config.bot_for("C123") == "support" and config.bot_for("C999") == "chatbot"
    assert config.bot_token.get_secret_value() == BOT_TOKEN
    assert BOT_TOKEN not in repr(config) and SECRET not in repr(config)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"SLACK_BOT_TOKEN": BOT_TOKEN}, "SLACK_SIGNING_SECRET is missing"),
        ({"SLACK_SIGNING_SECRET": SECRET}, "SLACK_BOT_TOKEN is missing"),
    ],
)
def test_partial_configuration_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], missing: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SlackConfigError, match=missing) as caught:
        SlackSettings().resolve()
    assert SECRET not in str(caught.value) and BOT_TOKEN not in str(caught.value)


def test_socket_mode_needs_the_app_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    with pytest.raises(SlackConfigError, match="SLACK_APP_TOKEN is missing"):
        SlackSettings().resolve(socket_mode=True)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-not-an-app-token")
    with pytest.raises(SlackConfigError, match="app-level token"):
        SlackSettings().resolve(socket_mode=True)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A1-1-abc")
    config = SlackSettings().resolve(socket_mode=True)
    assert config is not None and config.mode == "socket" and config.signing_secret is None


def test_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    (tmp_path / "token").write_text(BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(tmp_path / "token"))
    config = SlackSettings().resolve()
    assert config is not None
    assert config.signing_secret is not None
    assert config.signing_secret.get_secret_value() == SECRET  # the newline is stripped
    monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(tmp_path / "nope"))
    with pytest.raises(SlackConfigError, match=r"SLACK_BOT_TOKEN_FILE=.*cannot be read"):
        SlackSettings().resolve()
    monkeypatch.setenv("SLACK_BOT_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    with pytest.raises(SlackConfigError, match="not both"):
        SlackSettings().resolve()


def test_malformed_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-a-user-token")
    with pytest.raises(SlackConfigError, match="bot token"):
        SlackSettings().resolve()
    monkeypatch.setenv("FRONTDOOR_SLACK_CHANNEL_BOTS", "C123-support")
    with pytest.raises(ValueError, match="CHANNEL_ID:bot"):
        SlackSettings()
    monkeypatch.delenv("FRONTDOOR_SLACK_CHANNEL_BOTS")
    monkeypatch.setenv("FRONTDOOR_SLACK_THREAD_FOLLOW_SECONDS", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        SlackSettings()


def test_support_channel_without_slack_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDOOR_SUPPORT_CHANNEL", "C0SUPPORT")
    with pytest.raises(SlackConfigError, match="FRONTDOOR_SUPPORT_CHANNEL is set"):
        SlackSettings().resolve()


async def test_attach_refuses_an_unknown_bot(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("FRONTDOOR_SLACK_CHANNEL_BOTS", "C1:nobody")
    app = create_gateway_app(
        bus, RulesDialogue(), issuer=TEST_ISSUER, settings=make_settings(), turn_factory=Turn
    )
    with pytest.raises(SlackConfigError, match="'nobody', which does not exist"):
        attach_slack(app)
    monkeypatch.delenv("FRONTDOOR_SLACK_CHANNEL_BOTS")
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    assert attach_slack(app) is None  # not configured: the gateway runs without Slack
