"""``frontdoor bench workspace`` with tiny numbers: its own stack, an agent made with the CLI,
tickets and waiting hand-offs seeded, the inbox opened as the page does, agent replies reach
the widget alone and beside the e2e load; the report has every field and nothing was lost.
(It times nothing against a target: the numbers are the command's, docs/benchmarks.md.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_tiny_workspace_bench_loses_no_reply() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["bench", "workspace", "--tickets", "50", "--waiting", "10", "--replies", "10"]
    result = subprocess.run(
        [sys.executable, "-m", "frontdoor.cli", *args, "--opens", "5", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.stdout.strip(), result.stderr[-5000:]
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report, indent=2)
    assert report["tickets"] == 50 and report["waiting"] == 10
    assert report["inbox_listed"] == 10 and report["widget_guests"] == 10
    opened = report["inbox_open"]
    for part in ("page", "session", "snapshot", "tickets", "inbox_json"):
        assert opened[part]["count"] == 5 and opened[part]["p99_ms"] > 0, part
    assert opened["tickets_listed"] == 50 and opened["snapshot_bytes"] > 0
    for phase in ("reply_alone", "reply_under_load"):
        replies = report[phase]
        assert replies["replies"] == 10 and replies["lost"] == 0, phase
        assert replies["to_widget"]["count"] == 10 and replies["to_widget"]["p99_ms"] > 0
    assert report["lost_replies"] == 0
    load = report["load"]
    assert load["conversations"] == 50 and load["turns"] > 0 and load["unanswered"] == 0
    assert set(report["targets"]) == {
        "inbox_open_p99_under_300_ms",
        "reply_under_load_p99_under_200_ms",
    }
    assert "tickets:" in result.stderr  # progress on stderr
