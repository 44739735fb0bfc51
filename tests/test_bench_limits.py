"""``frontdoor bench limits`` runs on its own embedded nats-server and reports both storages."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from frontdoor import cli


@pytest.mark.timeout(120)
def test_bench_limits_measures_memory_and_nats() -> None:
    cli.register_commands()
    result = CliRunner().invoke(
        cli.app,
        ["bench", "limits", "--requests", "100", "--keys", "10", "--in-flight", "5", "--json"],
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.output)
    for storage in ("memory", "nats"):
        for measure in ("hit", "request"):
            m = numbers[storage][measure]
            assert 0 < m["p50_us"] <= m["p99_us"] and m["cpu_us"] > 0
        assert numbers[storage]["request_5_in_flight"]["requests_per_s"] > 0
    assert "nats_server_cpu_us" in numbers["nats"]["request"]
    assert numbers["nats"]["request_alternating_2_gateways"]["conflicts_per_request"] >= 0
