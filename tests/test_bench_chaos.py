"""``frontdoor bench chaos --quick``: the production shape on this machine (three NATS nodes, two
gateways, two instances of every service, PostgreSQL when reachable) loses a NATS node, an
instance of each service and a gateway while REST, WebSocket and Slack conversations run; every
turn is answered once and in order, every ticket a user was told about exists once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.chaos
@pytest.mark.timeout(300)
def test_quick_chaos_loses_doubles_and_reorders_nothing(tmp_path: Path) -> None:
    admin = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
    env = {**os.environ, "FRONTDOOR_BENCH_POSTGRES_URL": admin, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "frontdoor.cli", "bench", "chaos", "--quick", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.stdout.strip(), result.stderr[-5000:]
    report = json.loads(result.stdout)
    assert (report["lost"], report["duplicated"], report["out_of_order"]) == (0, 0, 0), json.dumps(
        report, indent=2
    )
    assert report["ok"] and result.returncode == 0
    assert report["turns_answered"] == report["turns_sent"] > 0
    assert set(report["channels"]) == {"rest", "ws", "slack"}
    assert report["tickets"]["told"] > 0
    assert report["tickets"]["in_database"] == report["tickets"]["told"]
    # every fault happened: new processes where one was killed, the gateway's users moved
    kinds = {fault["kind"]: fault for fault in report["faults"]}
    assert set(kinds) == {"nats node", "service instances", "gateway"}
    nats, services = kinds["nats node"], kinds["service instances"]
    assert nats["pids_after"] and nats["pids_after"] != nats["pids_before"]
    assert len(services["pids_before"]) == 4
    assert not set(services["pids_after"]) & set(services["pids_before"])
    assert kinds["gateway"]["pids_before"] and not kinds["gateway"]["pids_after"]
    assert sum(c["moved"] for c in report["channels"].values()) > 0
    shape = report["shape"]
    assert shape["nats_nodes"] == 3 and shape["gateways"] == 2
    if shape["database"] == "postgresql":
        assert set(shape["instances"].values()) == {2}
