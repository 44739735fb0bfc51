"""Settings of the composition root and URL redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from frontdoor.settings import FrontdoorSettings, redact_url


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://svc:pw@nats:4222")
    monkeypatch.setenv("FRONTDOOR_PORT", "9001")
    monkeypatch.setenv("FRONTDOOR_DATA_DIR", "/tmp/fd-x")
    settings = FrontdoorSettings()
    assert settings.nats() == "nats://svc:pw@nats:4222"
    assert "pw" not in repr(settings) and "pw" not in str(settings.model_dump())
    assert settings.port == 9001 and settings.data_dir == Path("/tmp/fd-x")
    assert FrontdoorSettings(port=8123, nats_url="nats://other:4222").nats() == "nats://other:4222"


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NATS_URL", "FRONTDOOR_NATS_URL", "FRONTDOOR_PORT", "FRONTDOOR_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = FrontdoorSettings()
    assert settings.nats() is None
    assert (settings.host, settings.port, settings.data_dir) == (
        "127.0.0.1",
        8000,
        Path(".frontdoor"),
    )


def test_selected_services() -> None:
    registered = ["analysis", "management"]
    assert FrontdoorSettings(services="").selected_services(registered) == registered
    assert FrontdoorSettings(services=" management ").selected_services(registered) == [
        "management"
    ]
    with pytest.raises(ValueError, match="unknown services"):
        FrontdoorSettings(services="management,nope").selected_services(registered)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError):
        FrontdoorSettings(port=70000)
    with pytest.raises(ValueError):
        FrontdoorSettings(log_format="xml")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://user:secret@nats:4222", "nats://user:***@nats:4222"),
        ("nats://token@nats:4222", "nats://***@nats:4222"),
        ("nats://a:x@n1:4222,nats://a:y@n2:4222", "nats://a:***@n1:4222,nats://a:***@n2:4222"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_log_safety_net_hides_a_urls_password() -> None:
    from frontdoor.logs import add_secret, redact_text

    out = redact_text("connect nats://management:s3cr3t-pw@127.0.0.1:4222,nats://cli:x@h:1 ok")
    assert "s3cr3t" not in out and ":x@" not in out
    assert "127.0.0.1:4222" in out and out.endswith(" ok")
    # a NATS password registered by up/serve is hidden wherever it appears
    add_secret("a-generated-nats-password")
    assert "a-generated-nats-password" not in redact_text("pw=a-generated-nats-password")


def test_up_and_serve_register_their_nats_passwords() -> None:
    from frontdoor.logs import redact_text
    from frontdoor.wiring import _never_log_nats

    _never_log_nats("nats://gateway:p%40ss-word-42@h:4222,nats://127.0.0.1:1", None)
    assert "p@ss-word-42" not in redact_text("it was p@ss-word-42")


def test_an_incomplete_smtp_configuration_stops_the_start_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bots.ticket_updates import SmtpSettings
    from frontdoor.wiring import ConfigurationError, _smtp_settings

    monkeypatch.setenv("FRONTDOOR_SMTP_HOST", "smtp.example.com")
    monkeypatch.delenv("FRONTDOOR_SMTP_FROM", raising=False)
    with pytest.raises(ConfigurationError, match=r"FRONTDOOR_SMTP_FROM .* is required"):
        _smtp_settings(SmtpSettings)


def test_the_smtp_password_is_registered_with_the_log_redaction() -> None:
    from types import SimpleNamespace

    from bots.ticket_updates import SmtpSettings
    from bots.web.settings import WebSettings
    from frontdoor.logs import redact_text
    from frontdoor.wiring import never_log

    smtp = SmtpSettings(
        host="smtp.example.com",
        from_address="support@example.com",
        username="mailer",
        password="an-smtp-password-77",
    )
    app = SimpleNamespace(state=SimpleNamespace(gateway=SimpleNamespace(smtp=smtp)))
    never_log(WebSettings(session_secret="s" * 32), app)  # type: ignore[arg-type]
    assert "an-smtp-password-77" not in redact_text("login failed for an-smtp-password-77")
