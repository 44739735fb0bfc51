"""The embedded nats-server with authentication (how ``frontdoor up`` runs it): generated
credentials kept private in the data dir, unauthenticated and wrong clients refused, each
component confined to its compartment."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import nats
import nats.errors
import pytest

from events.bus import Bus
from events.compartments import COMPONENTS
from events.credentials import CredentialsError, NatsCredentials, url_user, with_credentials
from events.embedded import EmbeddedNats
from events.errors import BusUnavailable


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_credentials_are_generated_once_private_and_rotated_by_deleting(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "credentials"
    first = NatsCredentials.ensure(directory)
    assert _mode(directory) == 0o700
    for user in COMPONENTS:
        assert _mode(directory / user) == 0o600, user
        assert len(first.password(user)) >= 32
    assert len(set(first.passwords.values())) == len(COMPONENTS)
    assert NatsCredentials.ensure(directory).passwords == first.passwords  # kept
    (directory / "marketing").unlink()
    (directory / "gateway").chmod(0o644)
    again = NatsCredentials.ensure(directory)
    assert again.password("marketing") != first.password("marketing")  # rotated
    assert again.password("gateway") == first.password("gateway")
    assert _mode(directory / "gateway") == 0o600  # tightened again
    assert again.password("cli") not in repr(again)  # never shown
    (directory / "cli").unlink()
    with pytest.raises(CredentialsError, match="no NATS credential for 'cli'"):
        NatsCredentials.load(directory, ["cli"])


def test_urls_carry_the_user_and_never_a_token_as_user() -> None:
    password = "p" * 40
    url = with_credentials("nats://a:1,nats://old:secret@b:2", "marketing", password)
    assert url == f"nats://marketing:{password}@a:1,nats://marketing:{password}@b:2"
    assert url_user(url) == "marketing"
    assert url_user("nats://s3cr3t-token@host:4222") is None  # a token is not a user name
    assert url_user("nats://host:4222") is None


async def test_unauthenticated_and_wrong_clients_are_refused(
    secured_server: EmbeddedNats,
) -> None:
    assert _mode(secured_server.config_file) == 0o600
    with pytest.raises(nats.errors.Error):
        await nats.connect(secured_server.url, allow_reconnect=False, connect_timeout=2)
    with pytest.raises(BusUnavailable, match="refused the connection"):
        await Bus.connect(secured_server.url, connect_timeout=5)
    wrong = with_credentials(secured_server.url, "gateway", "w" * 43)
    with pytest.raises(BusUnavailable, match="refused the connection") as refused:
        await Bus.connect(wrong, connect_timeout=5)
    assert "w" * 43 not in str(refused.value)  # never the password


async def test_each_component_logs_in_with_its_own_credential_and_stays_in_it(
    secured_server: EmbeddedNats,
) -> None:
    gateway = await Bus.connect(secured_server.url_for("gateway"))
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    marketing = await nats.connect(
        secured_server.url_for("marketing"),
        inbox_prefix="_INBOX.marketing",
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        assert gateway.nc._inbox_prefix == bytearray(b"_INBOX.gateway")
        await marketing.subscribe("_INBOX.gateway.>")
        await marketing.publish("fd.event.web.x.ticket.created", b"{}")
        await marketing.flush()
        await asyncio.sleep(0.1)  # nats-py reports errors from a task of their own
        assert any('subscription to "_inbox.gateway.>"' in e for e in errors), errors
        assert any('publish to "fd.event.web.x.ticket.created"' in e for e in errors), errors
        for user in COMPONENTS:
            bus = await Bus.connect(secured_server.url_for(user), ensure=False)
            assert bus.nc._inbox_prefix == bytearray(f"_INBOX.{user}".encode())
            await bus.require_streams()
            await bus.close()
    finally:
        await marketing.close()
        await gateway.close()


async def test_a_restart_keeps_the_credentials_and_the_streams(tmp_path: Path) -> None:
    credentials = NatsCredentials.ensure(tmp_path / "credentials")
    server = EmbeddedNats(tmp_path / "nats", credentials=credentials)
    await server.start()
    try:
        bus = await Bus.connect(server.url_for("gateway"))
        await bus.close()
        await server.stop()
        again = EmbeddedNats(
            tmp_path / "nats",
            port=server.port,
            credentials=NatsCredentials.ensure(tmp_path / "credentials"),
        )
        await again.start()
        try:
            marketing = await Bus.connect(again.url_for("marketing"), ensure=False)
            await marketing.require_streams()
            await marketing.close()
        finally:
            await again.stop()
    finally:
        await server.stop()
