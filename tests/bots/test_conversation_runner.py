"""The conversation runner (`frontdoor test conversations`) against a live scripted gateway."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from frontdoor.cli_test_conversations import ScenarioError, format_report, load_scenarios, run_files

from .conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]

SCENARIOS = """
scenarios:
  - name: saves and substitutes
    bot: support
    turns:
      - user: ticket printer jammed
        expect: 'Ticket #\\d+'
        save: {number: '#(\\d+)'}
      - user: "count {number}"
        expect: 'support 0'
  - name: a failing turn is reported
    turns:
      - user: hello
        expect: 'echo: hello'
      - user: buttons
        expect: 'this will not match'
"""


async def test_runner_reports_failing_turn_and_summary(gateway: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text(SCENARIOS)
    results = await run_files(gateway.url, [path])
    assert [r.passed for r in results] == [True, False]
    assert results[0].variables["number"].isdigit()
    failure = results[1].failure
    assert failure is not None and failure.turn == 2 and failure.got == ["Pick one"]
    report = format_report(results)
    assert "FAIL  a failing turn is reported  (turn 2: no reply matched)" in report
    assert "expected: /this will not match/" in report and "got:      Pick one" in report
    assert report.endswith("1 passed, 1 failed")


async def test_cli_exit_codes(gateway: LiveServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(SCENARIOS)
    good = tmp_path / "good.yml"
    good.write_text(SCENARIOS.split("  - name: a failing")[0])

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "frontdoor.cli",
            "test",
            "conversations",
            *args,
            "--url",
            gateway.url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    code, out = await cli(str(good))
    assert code == 0 and out.strip().endswith("1 passed, 0 failed"), out
    code, out = await cli(str(bad))
    assert code == 1 and "1 passed, 1 failed" in out, out


def test_invalid_files_are_refused_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_text(
        "scenarios:\n  - name: x\n    turns:\n      - user: hi\n        expect: '(unclosed'\n"
    )
    with pytest.raises(ScenarioError, match="bad regex"):
        load_scenarios(path)
    path.write_text("scenarios:\n  - name: x\n    turns: []\n")
    with pytest.raises(ScenarioError, match="not a valid scenario file"):
        load_scenarios(path)


def test_shipped_scenarios_load() -> None:
    scenarios = load_scenarios(ROOT / "tests" / "scenarios" / "conversations.yml")
    assert len(scenarios) == 8
    status = scenarios[1].turns[-1].user
    assert status == "what's the status of ticket #{ticket}?"
