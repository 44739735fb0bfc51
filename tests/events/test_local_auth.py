"""The embedded server of ``frontdoor up`` admits only the components' own credentials, kept
private in the data directory, with the permissions of the deploy config."""

from __future__ import annotations

import stat
from pathlib import Path

import nats
import nats.errors
import pytest

from events import subjects
from events.bus import Bus
from events.compartments import components
from events.errors import BusUnavailable
from events.local_auth import (
    CONFIG_FILE,
    CREDENTIALS_DIR,
    LocalCredentials,
    has_credentials,
    secured_embedded,
    with_credentials,
)
from tests.conftest import TEST_LIMITS

SERVICES = ["analysis", "generative", "management", "marketing"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_only_the_components_credentials_get_in(tmp_path: Path) -> None:
    server, credentials = secured_embedded(tmp_path / "nats", SERVICES)
    url = await server.start()
    try:
        # no credential, a wrong one, a made-up user: refused
        for attempt in (
            url,
            with_credentials(url, "gateway", "guess"),
            with_credentials(url, "intruder", credentials.passwords["gateway"]),
        ):
            with pytest.raises(BusUnavailable, match="refused the credentials") as caught:
                await Bus.connect(attempt, connect_timeout=5, limits=TEST_LIMITS)
            assert "guess" not in str(caught.value)  # never the password
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(url, allow_reconnect=False, connect_timeout=2)
        # each component with its own: in, with its compartment
        gateway = await Bus.connect(
            credentials.url("gateway", url), component="gateway", limits=TEST_LIMITS
        )
        marketing = await Bus.connect(
            credentials.url("marketing", url),
            component="marketing",
            limits=TEST_LIMITS,
            ensure=False,
            publish_timeout=2,
        )
        try:
            assert await marketing.missing_streams() == []  # the gateway created them
            kv = await gateway.key_value(subjects.CONVERSATIONS_BUCKET)
            await kv.put("k", b"v")
            with pytest.raises(Exception):  # noqa: B017 - a denied JetStream request times out
                await marketing.key_value(subjects.CONVERSATIONS_BUCKET)
        finally:
            await marketing.close()
            await gateway.close()
    finally:
        await server.stop()


def test_credentials_and_config_are_private_and_kept(tmp_path: Path) -> None:
    nats_dir = tmp_path / "nats"
    _, first = secured_embedded(nats_dir, SERVICES)
    folder = nats_dir / CREDENTIALS_DIR
    assert _mode(folder) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == sorted(components(SERVICES))
    for path in folder.iterdir():
        assert _mode(path) == 0o600, path
    config = nats_dir / CONFIG_FILE
    assert _mode(config) == 0o600
    assert len(set(first.passwords.values())) == len(first.passwords)  # one each, random
    for password in first.passwords.values():
        assert len(password) >= 40 and f'"{password}"' in config.read_text()
    # a second start keeps them; a rotation changes only that component's
    _, again = secured_embedded(nats_dir, SERVICES)
    assert again.passwords == first.passwords
    again.rotate("marketing")
    _, rotated = secured_embedded(nats_dir, SERVICES)
    assert rotated.passwords["marketing"] != first.passwords["marketing"]
    assert {k: v for k, v in rotated.passwords.items() if k != "marketing"} == {
        k: v for k, v in first.passwords.items() if k != "marketing"
    }
    assert LocalCredentials.load(nats_dir, "cli").passwords["cli"] == first.passwords["cli"]


def test_urls_with_and_without_credentials() -> None:
    assert not has_credentials("nats://nats:4222")
    assert not has_credentials("nats://a:b@n1:4222,nats://n2:4222")
    assert has_credentials("nats://a:b@n1:4222,nats://a:b@n2:4222")
    assert has_credentials("nats://token@n1:4222")
    assert not has_credentials("")
    url = with_credentials("nats://127.0.0.1:4222", "management", "p/w@:")
    assert url == "nats://management:p%2Fw%40%3A@127.0.0.1:4222"
    assert with_credentials("nats://old:pw@h:1", "cli", "x") == "nats://cli:x@h:1"
