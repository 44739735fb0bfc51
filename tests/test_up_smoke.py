"""``frontdoor up`` end to end: a real process, embedded NATS, a ticket through the headless API,
then SIGINT: a clean exit (code 0) and no nats-server left behind. The same with ``--split``
(each service a child process): the services' HTTP doors (the gateway's) still answer under
/services, and no child outlives ``up``. The embedded nats-server refuses clients without a
credential; ``frontdoor doctor`` attaches as the ``cli`` user, and each child connects as its
own service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend_services import registry
from events.embedded import free_port
from frontdoor.local_nats import credentials_dir, server_dir

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT = 90.0
EXIT_TIMEOUT = 30.0
METRICS_TOKEN = "metrics-token-of-the-smoke-test-0123"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _pgrep(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _guest_headers(base: str) -> dict[str, str]:
    """A new guest session's ``Authorization`` header."""
    session = httpx.post(f"{base}/api/session", json={}, timeout=10).json()
    return {"Authorization": f"Bearer {session['token']}"}


def _refused_without_credentials(data_dir: Path) -> bool:
    """A client with no user and password gets "Authorization Violation" from up's NATS."""
    import asyncio

    import nats
    import nats.errors

    url = (data_dir / "nats-server.url").read_text().strip()

    async def attempt() -> bool:
        try:
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=3)
        except nats.errors.Error as exc:
            return "authorization violation" in str(exc).lower()
        await nc.close()
        return False

    return asyncio.run(attempt())


def _child_nats_user(pid: int, data_dir: Path) -> str:
    """The NATS user (checked against its generated password) a child process connects as; it
    holds none of the gateway's secrets."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {v.split(b"=", 1)[0].decode() for v in environ if b"=" in v}
    assert not names & {"FRONTDOOR_SESSION_SECRET", "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE"}, (
        "a service process holds a secret of the gateway"
    )
    url = next(v for v in environ if v.startswith(b"NATS_URL=")).decode()[len("NATS_URL=") :]
    user, _, rest = url.removeprefix("nats://").partition(":")
    password = rest.partition("@")[0]
    assert password == (credentials_dir(data_dir) / user).read_text().strip()
    return user


def _docs_and_metrics(base: str, *, closed: bool) -> None:
    """Open by default; with FRONTDOOR_DOCS=off and FRONTDOOR_METRICS_TOKEN, no /docs nor
    /openapi.json, and /metrics only for the token."""
    for path in ("/docs", "/openapi.json"):
        assert httpx.get(f"{base}{path}", timeout=5).status_code == (404 if closed else 200)
    metrics = httpx.get(f"{base}/metrics/", timeout=5)
    if not closed:
        assert metrics.status_code == 200 and "python_info" in metrics.text
        return
    assert metrics.status_code == 401 and metrics.headers["www-authenticate"] == "Bearer"
    assert METRICS_TOKEN not in metrics.text
    wrong = httpx.get(f"{base}/metrics/", headers={"Authorization": "Bearer x"}, timeout=5)
    assert wrong.status_code == 401
    right = httpx.get(
        f"{base}/metrics/", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5
    )
    assert right.status_code == 200 and "python_info" in right.text


def _kill_management_and_see_it_restarted(base: str, pid: int) -> None:
    """SIGKILL the management child: /healthz shows it down, then back with a new pid."""
    os.kill(pid, signal.SIGKILL)
    seen_down = False
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        state = httpx.get(f"{base}/healthz", timeout=5).json()["services"]["management"]
        if state["ok"] and state["pid"] != pid:
            break
        seen_down = seen_down or not state["ok"]
        assert time.monotonic() < deadline, f"management was not restarted: {state}"
        time.sleep(0.1)
    assert seen_down, "the killed service was never reported down"
    assert state["restarts"] == 1, state


@pytest.mark.timeout(240)
@pytest.mark.parametrize("split", [False, True], ids=["one-process", "split"])
def test_frontdoor_up_serves_a_ticket_and_stops_cleanly(tmp_path: Path, split: bool) -> None:
    data_dir = tmp_path / "fd-data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "FRONTDOOR_NATS_URL")}
    env.update(FRONTDOOR_LOG_FORMAT="json", PYTHONPATH=str(ROOT))
    if split:  # the closed shape: no /docs, /metrics only with the token
        env.update(FRONTDOOR_DOCS="off", FRONTDOOR_METRICS_TOKEN=METRICS_TOKEN)
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "frontdoor.cli",
                "up",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *(["--split"] if split else []),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    children: list[str] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert proc.poll() is None, f"frontdoor up exited early:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not ready in time:\n{log_path.read_text()}"
            time.sleep(0.25)

        pid_file = data_dir / "nats-server.pid"
        nats_pid = int(pid_file.read_text())
        assert _alive(nats_pid)
        assert "Frontdoor is up." in log_path.read_text()
        _docs_and_metrics(base, closed=split)
        assert httpx.get(f"{base}/", timeout=5).status_code == 200  # the web widget

        # A visitor: a guest session (no credential at all is a 401).
        ticket = {
            "subject": "Smoke test: the printer is on fire",
            "requester_email": "smoke@example.com",
            "priority": "high",
        }
        anonymous = httpx.post(f"{base}/api/intents/management/ticket_create", json=ticket)
        assert anonymous.status_code == 401, anonymous.text
        guest = _guest_headers(base)
        response = httpx.post(
            f"{base}/api/intents/management/ticket_create", json=ticket, headers=guest, timeout=60
        )
        assert response.status_code == 200, response.text
        body = response.json()
        reply = body["reply"]
        assert reply["status"] == "ok" and reply["service"] == "management"
        number = reply["data"]["number"]
        assert reply["data"]["subject"] == "Smoke test: the printer is on fire"

        got = httpx.post(
            f"{base}/api/intents/management/ticket_get",
            json={"ticket": number},
            headers=guest,
            timeout=60,
        )
        assert got.status_code == 200, got.text  # the guest who opened it may read it
        # Another visitor cannot read it (management's rule): a clear 403 reply.
        other = httpx.post(
            f"{base}/api/intents/management/ticket_get",
            json={"ticket": number},
            headers=_guest_headers(base),
            timeout=60,
        )
        assert other.status_code == 403, other.text
        assert other.json()["reply"]["status"] == "denied"
        nosuch = httpx.post(f"{base}/api/intents/nosuch/thing", json={}, headers=guest)
        assert nosuch.status_code == 404
        # The services' HTTP doors are the gateway's, in both shapes: a credential is needed,
        # and the service checks the claim the gateway signs for it.
        door_url = f"{base}/services/management/ticket_get"
        door = httpx.post(door_url, json={"ticket": number})
        assert door.status_code == 401, door.text
        door = httpx.post(door_url, json={"ticket": number}, headers=guest, timeout=60)
        assert door.status_code == 200 and door.json()["number"] == number, door.text
        # /healthz shows every service, in this process or as a child process
        health = httpx.get(f"{base}/healthz", timeout=5).json()
        assert set(health["services"]) == set(registry.service_names()), health
        assert health["services_ok"] is True, health
        kind = "child" if split else "in-process"
        assert all(state["process"] == kind for state in health["services"].values()), health
        # NATS: credentials in the data dir, anonymous clients refused, the CLI attaches as cli
        assert {p.name for p in credentials_dir(data_dir).iterdir()} >= {"gateway", "cli"}
        assert _refused_without_credentials(data_dir)
        doctor = subprocess.run(
            [sys.executable, "-m", "frontdoor.cli", "doctor", "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert "all good" in doctor.stdout
        if split:  # each child is its own service's NATS user, never the gateway's
            for name, state in health["services"].items():
                assert _child_nats_user(state["pid"], data_dir) == name
        if split:
            _kill_management_and_see_it_restarted(base, health["services"]["management"]["pid"])
            again = httpx.post(
                f"{base}/api/intents/management/ticket_create",
                json={"subject": "After the restart", "requester_email": "smoke@example.com"},
                headers=guest,
                timeout=60,
            )
            assert again.status_code == 200, again.text
            assert again.json()["reply"]["data"]["number"] > number
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid), "-f", "frontdoor.cli serve management"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert bool(children) == split, children
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"frontdoor up did not exit within {EXIT_TIMEOUT}s after SIGINT")
    output = log_path.read_text()
    assert code == 0, f"exit code {code}:\n{output}"
    assert not _alive(nats_pid), "the embedded nats-server outlived frontdoor up"
    assert not pid_file.exists()
    assert _pgrep(str(data_dir)) == [], "a process still runs with the data dir"
    for child in children:
        assert not _alive(int(child)), "a service process outlived frontdoor up"
    assert "embedded nats-server stopped" in output
    # everything above ran within the compartments: the server refused nothing anyone did
    refused = [
        line
        for line in (server_dir(data_dir) / "nats-server.log").read_text().splitlines()
        if " Violation - Subject" in line
    ]
    assert refused == [], refused
