"""``frontdoor bench bus`` runs end to end (small sizes; no timing assertions)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from frontdoor import cli


@pytest.mark.timeout(120)
def test_bench_bus_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    cli.register_commands()
    result = CliRunner().invoke(
        cli.app, ["bench", "bus", "--events", "300", "--requests", "50", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["embedded"] is True and data["events"] == 300
    assert data["acked_publishes_per_s"] > 0
    levels = {lat["in_flight"]: lat for lat in data["latency"]}
    assert set(levels) == {1, 50}
    for lat in levels.values():
        assert lat["requests"] >= 50 and 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert lat["process_cpu_us_per_round_trip"] > 0
    assert data["event_loop"] in {"uvloop", "asyncio"}
