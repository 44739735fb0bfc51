"""Ticket notices by e-mail, against a real SMTP server (aiosmtpd on a free port): the requester
gets one e-mail per notice, with the right recipient and subject; a server that keeps refusing
is retried, then logged once, and the password is never logged; without SMTP settings nothing
is sent."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from bots.ticket_updates import SmtpSettings
from events import subjects
from events.bus import Bus
from events.embedded import free_port
from events.envelope import Conversation

from .conftest import LiveServer, start_gateway
from .notices import REQUESTER_EMAIL, TicketDialogue, act, management, settle, wait_notices
from .web_clients import guest_client

#: the local test server takes a login without TLS (aiosmtpd warns about it)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

USER = "frontdoor-mailer"
PASSWORD = "s3cret-smtp-passw0rd"


@dataclass
class Inbox:
    """What the SMTP server accepted: one message per delivery, with its envelope recipients."""

    received: list[tuple[list[str], Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == USER
            and auth_data.password.decode() == PASSWORD
        )
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok, handled=False)

    async def wait(self, count: int, timeout: float = 20.0) -> list[tuple[list[str], Message]]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                await asyncio.sleep(0.05)
        return self.received


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free port that wants a login (plain text, local)."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def smtp_settings(port: int, **extra: Any) -> SmtpSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "from_address": "Support <support@example.com>",
        "starttls": False,
        "timeout_seconds": 5.0,
    }
    values.update(extra)
    return SmtpSettings(**values)


async def _open_ticket(live: LiveServer) -> tuple[str, int]:
    async with guest_client(live.url) as guest:
        r = await guest.client.post("/webhooks/rest/webhook", json={"message": "ticket VPN drops"})
        assert r.status_code == 200, r.text
    return guest.sender, int(re.findall(r"#(\d+)", r.text)[0])


async def test_the_requester_gets_an_email_per_notice(
    bus: Bus, tmp_path: Path, smtp_server: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    inbox, port = smtp_server
    async with management(bus, tmp_path):
        live = await start_gateway(bus, TicketDialogue(), smtp=smtp_settings(port))
        try:
            _, number = await _open_ticket(live)
            await act(bus, "ticket_comment", ticket=number, body="internal", public=False)
            await act(bus, "ticket_comment", ticket=number, body="Please restart the router.")
            await act(bus, "ticket_update", ticket=number, status="solved")
            received = await inbox.wait(2)
            await settle()
            assert len(inbox.received) == 2
            (to1, first), (to2, second) = received
            assert to1 == to2 == [REQUESTER_EMAIL]
            assert first["Subject"] == f"[Ticket #{number}] VPN drops: new reply"
            assert first["From"] == "Support <support@example.com>"
            assert "Please restart the router." in first.get_payload()
            assert "internal" not in first.get_payload()
            assert second["Subject"] == f"[Ticket #{number}] VPN drops: now solved"
            assert f"Ticket #{number} (VPN drops) is now solved." in second.get_payload()
            assert inbox.logins == [USER, USER]
        finally:
            await live.stop()
    assert PASSWORD not in caplog.text


async def test_two_gateways_send_each_email_once(
    bus: Bus, tmp_path: Path, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    async with management(bus, tmp_path):
        first = await start_gateway(bus, TicketDialogue(), smtp=smtp_settings(port))
        second = await start_gateway(bus, TicketDialogue(), smtp=smtp_settings(port))
        try:
            sender, number = await _open_ticket(first)
            for i in range(3):
                await act(bus, "ticket_comment", ticket=number, body=f"note {i}")
            await inbox.wait(3)
            # the chat notices came too (the e-mails never hold them up)
            await wait_notices(bus, Conversation(channel="rest", id=sender), 3)
            await settle()
            assert len(inbox.received) == 3
            bodies = sorted(m.get_payload() for _, m in inbox.received)
            assert [b.splitlines()[1] for b in bodies] == ["note 0", "note 1", "note 2"]
        finally:
            await first.stop()
            await second.stop()


async def test_a_refusing_server_is_retried_then_logged_once_without_the_password(
    bus: Bus, tmp_path: Path, smtp_server: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    inbox, port = smtp_server
    wrong = "not-the-right-passw0rd"
    settings = smtp_settings(port, password=wrong, attempts=2)
    async with management(bus, tmp_path):
        live = await start_gateway(bus, TicketDialogue(), smtp=settings)
        try:
            sender, number = await _open_ticket(live)
            await act(bus, "ticket_comment", ticket=number, body="Please restart the router.")
            # the chat notice is not held up by the failing e-mail
            await wait_notices(bus, Conversation(channel="rest", id=sender), 1)
            async with asyncio.timeout(20):
                while not [r for r in caplog.records if "gave up" in r.getMessage()]:
                    await asyncio.sleep(0.1)
            await settle(0.5)
        finally:
            await live.stop()
    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.ERROR
    assert "ticket.commented" in gave_up[0].getMessage()
    assert inbox.received == []
    assert wrong not in caplog.text and PASSWORD not in caplog.text


async def test_without_smtp_settings_no_email_is_attempted(
    bus: Bus, tmp_path: Path, smtp_server: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, _port = smtp_server
    for name in ("HOST", "PORT", "USERNAME", "PASSWORD", "FROM", "STARTTLS"):
        monkeypatch.delenv(f"FRONTDOOR_SMTP_{name}", raising=False)
    async with management(bus, tmp_path):
        live = await start_gateway(bus, TicketDialogue())  # SMTP settings from the environment
        try:
            assert live.app.state.gateway.email_notices is None
            sender, number = await _open_ticket(live)
            await act(bus, "ticket_comment", ticket=number, body="Please restart the router.")
            await wait_notices(bus, Conversation(channel="rest", id=sender), 1)
            await settle()
            assert inbox.received == [] and inbox.logins == []
            consumers = [c.name async for c in _consumers(bus)]
            assert subjects.TICKET_EMAILS_CONSUMER not in consumers
            assert subjects.TICKET_NOTICES_CONSUMER in consumers
        finally:
            await live.stop()


async def _consumers(bus: Bus) -> Any:
    for info in await bus.js.consumers_info(subjects.EVENT_STREAM):
        yield info


def test_smtp_settings_are_off_by_default_and_complete_when_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HOST", "PORT", "USERNAME", "PASSWORD", "FROM", "STARTTLS"):
        monkeypatch.delenv(f"FRONTDOOR_SMTP_{name}", raising=False)
    assert not SmtpSettings().enabled
    monkeypatch.setenv("FRONTDOOR_SMTP_HOST", "smtp.example.com")
    with pytest.raises(ValueError, match="FRONTDOOR_SMTP_FROM"):
        SmtpSettings()
    monkeypatch.setenv("FRONTDOOR_SMTP_FROM", "Support <support@example.com>")
    monkeypatch.setenv("FRONTDOOR_SMTP_USERNAME", "mailer")
    with pytest.raises(ValueError, match="FRONTDOOR_SMTP_PASSWORD"):
        SmtpSettings()
    monkeypatch.setenv("FRONTDOOR_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("FRONTDOOR_SMTP_PORT", "2525")
    monkeypatch.setenv("FRONTDOOR_SMTP_STARTTLS", "false")
    settings = SmtpSettings()
    assert settings.enabled and settings.port == 2525 and settings.starttls is False
    assert settings.from_address == "Support <support@example.com>"
    assert PASSWORD not in repr(settings)
