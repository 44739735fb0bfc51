"""``frontdoor nats``: the deploy config on stdout, and rotating a component's password of the
embedded server (refused for an unknown component and while ``frontdoor up`` runs)."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from frontdoor.cli_nats import deploy_config, nats_app

ROOT = Path(__file__).resolve().parents[1]


def test_config_prints_the_deploy_config() -> None:
    result = CliRunner().invoke(nats_app, ["config"])
    assert result.exit_code == 0
    assert result.output == deploy_config()


def test_rotate_changes_one_password_and_refuses_what_it_must(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(nats_app, ["rotate", "marketing", "--data-dir", str(data)]).exit_code == 0
    folder = data / "nats" / "credentials"
    before = {p.name: p.read_text() for p in folder.iterdir()}
    done = runner.invoke(nats_app, ["rotate", "marketing", "--data-dir", str(data)])
    assert done.exit_code == 0 and "next start" in done.output
    after = {p.name: p.read_text() for p in folder.iterdir()}
    assert after["marketing"] != before["marketing"]
    assert {k: v for k, v in after.items() if k != "marketing"} == {
        k: v for k, v in before.items() if k != "marketing"
    }

    unknown = runner.invoke(nats_app, ["rotate", "intruder", "--data-dir", str(data)])
    assert unknown.exit_code == 2 and "unknown component" in unknown.output
    assert not (folder / "intruder").exists()

    (data / "nats-server.pid").write_text(f"{os.getpid()}\n")  # "up" runs (a live process)
    running = runner.invoke(nats_app, ["rotate", "marketing", "--data-dir", str(data)])
    assert running.exit_code == 2 and "is running" in running.output
    assert (folder / "marketing").read_text() == after["marketing"]
