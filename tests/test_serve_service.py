"""``frontdoor serve <service>``: one service alone against NATS_URL (as its own NATS user on a
server with authentication; intents and signed request/reply, its HTTP door is the gateway's),
``/healthz`` and Prometheus ``/metrics``; and the configurations it refuses to start with
(no claims public keys, no NATS credentials)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from events.bus import Bus
from events.claims import system_actor
from events.embedded import EmbeddedNats, free_port
from events.micro import ServiceClient, discover, micro_subject
from events.payloads import Reply
from tests.claims import TEST_ISSUER, TEST_KEYS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
async def test_serve_one_service_with_its_three_doors(
    secured_server: EmbeddedNats, tmp_path: Path
) -> None:
    bus = await Bus.connect(secured_server.url_for("gateway"))  # creates the streams
    cli = await Bus.connect(secured_server.url_for("cli"), ensure=False)
    port = free_port()
    env = dict(os.environ, NATS_URL=secured_server.url_for("management"), PYTHONPATH=str(ROOT))
    env.update(FRONTDOOR_DATA_DIR=str(tmp_path / "data"), FRONTDOOR_LOG_FORMAT="json")
    env["FRONTDOOR_CLAIMS_PUBLIC_KEYS"] = json.dumps(TEST_KEYS.to_jwks())
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [sys.executable, "-m", "frontdoor.cli", "serve", "management", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                await asyncio.sleep(0.2)
            # No HTTP door here: the gateway serves it and forwards signed requests.
            spec = (await client.get("/openapi.json")).json()
            assert "/services/management/ticket_create" not in spec["paths"]
            # The request door answers a claim signed with the configured key, and only that.
            unsigned = await bus.request(
                micro_subject("management", "services_status"), json.dumps({}).encode()
            )
            assert Reply.model_validate_json(unsigned).status == "denied"
            status = await ServiceClient(bus, TEST_ISSUER, timeout=10).call(
                "management", "services_status", {}, system_actor("gateway")
            )
            assert status.status == "ok" and "management" in status.text
            assert [p["name"] for p in await discover(cli, "PING", "management")] == ["management"]
            metrics = (await client.get("/metrics/")).text
            assert 'frontdoor_service_calls_total{action="services_status"' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 30)
        await cli.close()
        await bus.close()
    assert code == 0, log_path.read_text()[-3000:]
    assert secured_server.credentials is not None
    assert secured_server.credentials.password("management") not in log_path.read_text()


#: the claims public keys a service needs before anything else (the test key)
_KEYS_ENV = {"FRONTDOOR_CLAIMS_PUBLIC_KEYS": json.dumps(TEST_KEYS.to_jwks())}


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frontdoor.cli", "serve", *args, "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **_KEYS_ENV, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.mark.timeout(120)
async def test_serve_refuses_a_nats_url_without_credentials_unless_allowed(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_server.url, "FRONTDOOR_DATA_DIR": str(tmp_path / "data")}
    done = await asyncio.to_thread(_serve, env, "marketing")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "NATS_URL carries no credentials" in done.stderr
    assert "nats://marketing:<password>@" in done.stderr
    assert "FRONTDOOR_NATS_ALLOW_ANONYMOUS=1" in done.stderr
    placeholder = nats_server.url.replace("nats://", "nats://marketing:CHANGE-ME@")
    done = await asyncio.to_thread(_serve, {**env, "NATS_URL": placeholder}, "marketing")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "placeholder password" in done.stderr
    # the explicit opt-out gets past the check: it then waits for the streams (none here)
    allowed = {**env, "FRONTDOOR_NATS_ALLOW_ANONYMOUS": "1", "FRONTDOOR_STREAMS_WAIT": "0"}
    done = await asyncio.to_thread(_serve, allowed, "marketing")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "NATS_URL carries no credentials" not in done.stderr
    assert "FD_INTENTS, FD_EVENTS, FD_DEAD do not exist" in done.stderr


@pytest.mark.timeout(120)
async def test_a_service_says_clearly_that_the_gateway_has_not_created_the_streams(
    secured_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = {
        "NATS_URL": secured_server.url_for("analysis"),
        "FRONTDOOR_DATA_DIR": str(tmp_path / "data"),
        "FRONTDOOR_STREAMS_WAIT": "1",
    }
    done = await asyncio.to_thread(_serve, env, "analysis")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "FD_INTENTS, FD_EVENTS, FD_DEAD do not exist" in done.stderr
    assert "Services never create them: the gateway does" in done.stderr


@pytest.mark.timeout(60)
async def test_a_taken_port_is_a_clear_error_before_anything_starts(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, NATS_URL=nats_server.url, PYTHONPATH=str(ROOT), **_KEYS_ENV)
        env.update(FRONTDOOR_DATA_DIR=str(tmp_path / "data"))
        for command in (["serve", "management"], ["up", "--data-dir", str(tmp_path / "up")]):
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "frontdoor.cli", *command, "--port", str(port)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=45,
            )
            assert done.returncode == 2, done.stderr[-2000:]
            assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
            assert "--port" in done.stderr
    # nothing was started: `up` left no embedded server behind
    assert not (tmp_path / "up" / "nats-server.pid").exists()


@pytest.mark.timeout(60)
async def test_serve_refuses_to_start_without_the_claims_keys(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    env = dict(os.environ, NATS_URL=nats_server.url, PYTHONPATH=str(ROOT))
    env.update(FRONTDOOR_DATA_DIR=str(tmp_path / "data"), FRONTDOOR_SESSION_SECRET="s" * 40)
    for name in ("FRONTDOOR_CLAIMS_PUBLIC_KEYS", "FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE"):
        env.pop(name, None)
    for name in ("FRONTDOOR_CLAIMS_SIGNING_KEY", "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE"):
        env.pop(name, None)
    for component, wanted in (
        ("management", "FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE"),
        ("gateway", "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE"),
    ):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "frontdoor.cli", "serve", component, "--port", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=45,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert wanted in done.stderr and "docs/security.md" in done.stderr
