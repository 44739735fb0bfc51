"""``frontdoor up`` in one process: the embedded server runs with authentication, and the
gateway and each service connect as their own NATS user (one connection each)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from events.bus import Bus
from events.compartments import COMPONENTS
from events.errors import BusUnavailable
from frontdoor.local_nats import NATS_URL_FILE, attach_url, credentials_dir, server_dir
from frontdoor.settings import FrontdoorSettings
from frontdoor.wiring import open_bus, start_services


def _prefix(bus: Bus) -> str:
    return bytes(bus.nc._inbox_prefix).decode()


@pytest.mark.timeout(120)
async def test_up_runs_an_authenticated_server_and_one_connection_per_component(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    for name in ("NATS_URL", "FRONTDOOR_NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(data))
    stack = await open_bus(FrontdoorSettings(data_dir=data), embedded=True, component="gateway")
    try:
        await start_services(stack, ["marketing", "management"], data)
        assert _prefix(stack.bus) == "_INBOX.gateway"
        buses = {runner.service.name: runner.bus for runner in stack.runners}
        assert {name: _prefix(bus) for name, bus in buses.items()} == {
            "marketing": "_INBOX.marketing",
            "management": "_INBOX.management",
        }
        assert len({id(b) for b in (stack.bus, *buses.values())}) == 3
        # the credentials and the server's configuration are the owner's only
        for user in COMPONENTS:
            assert stat.S_IMODE((credentials_dir(data) / user).stat().st_mode) == 0o600
        assert stat.S_IMODE(credentials_dir(data).stat().st_mode) == 0o700
        assert stat.S_IMODE((server_dir(data) / "nats-server.conf").stat().st_mode) == 0o600
        # nobody gets in without a credential; the CLI attaches as `cli`
        plain = (data / NATS_URL_FILE).read_text().strip()
        with pytest.raises(BusUnavailable, match="refused"):
            await Bus.connect(plain, connect_timeout=5, ensure=False)
        attached = attach_url(data)
        assert attached is not None and attached.startswith("nats://cli:")
        cli = await Bus.connect(attached, ensure=False)
        assert _prefix(cli) == "_INBOX.cli"
        await cli.close()
    finally:
        await stack.aclose()
    assert not (data / NATS_URL_FILE).exists()
