"""``frontdoor bench claims`` measures what it says: remembered claims cost far less."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from frontdoor import cli


def test_bench_claims_prints_fresh_and_cached_costs() -> None:
    cli.register_commands()
    result = CliRunner().invoke(cli.app, ["bench", "claims", "--calls", "200", "--json"])
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.output)
    assert numbers["sign_us"] > numbers["sign_cached_us"] > 0
    assert numbers["verify_us"] > numbers["verify_cached_us"] > 0
    first_turn = numbers["sign_us"] + numbers["verify_us"]
    assert numbers["per_turn_us"] < first_turn  # later turns hit the caches
