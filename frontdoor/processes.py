"""``frontdoor up --split``: each backend service in a supervised child process.

In one process every service shares the gateway's event loop and Python's one core (the GIL).
With ``--split`` ``up`` keeps the embedded nats-server and the gateway, and runs each service as
``frontdoor serve <service>`` in a child process on a free local port (the production shape,
see ``docs/spine.md``), so a machine's cores are all used. A child that dies is started again
with back-off; the children stop before the nats-server does, and die with ``up`` even if it
is killed (Linux parent-death signal).

Each child connects as its own service's NATS user (never the gateway's): on the embedded server
with the credential ``up`` generated for that service.

The services' HTTP doors and analysis's chart images are the gateway's in both shapes (doors are
forwarded as signed NATS requests, charts read from the object store), so URLs are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from events.credentials import has_credentials
from events.embedded import free_port

log = structlog.get_logger("frontdoor.processes")

#: How long a child may take to answer /healthz (the first start imports torch, loads models).
READY_TIMEOUT = 180.0
#: How long a child may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Back-off between restarts of a child that keeps dying (seconds; doubles up to the last).
RESTART_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: A child that ran this long before it died starts again without waiting.
STABLE_AFTER = 60.0


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class _Child:
    name: str
    port: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


#: What only the gateway holds: a service process never inherits it.
GATEWAY_ONLY = frozenset(
    {
        "FRONTDOOR_NATS_URL",
        "FRONTDOOR_CLAIMS_SIGNING_KEY",
        "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE",
        "FRONTDOOR_SESSION_SECRET",
    }
)


def _child_env(nats_url: str) -> dict[str, str]:
    """A child's environment: ours, with its own ``NATS_URL`` and none of the gateway's secrets
    (its claims signing key, its session secret). ``up`` may run against a NATS without
    authentication (its ``NATS_URL`` without credentials): its children may too."""
    env = {k: v for k, v in os.environ.items() if k not in GATEWAY_ONLY}
    env["NATS_URL"] = nats_url
    if not has_credentials(nats_url):
        env["FRONTDOOR_NATS_ALLOW_ANONYMOUS"] = "1"
    return env


class ServiceProcesses:
    """Starts, watches and stops one ``frontdoor serve <service>`` child per service."""

    def __init__(self, nats_urls: dict[str, str]) -> None:
        """``nats_urls``: service name -> the NATS URL its child connects with (its own user's
        credential on the embedded server; secret)."""
        self.children = {name: _Child(name, free_port()) for name in nats_urls}
        self._env = {name: _child_env(url) for name, url in nats_urls.items()}
        self._stopping = False
        #: the gateway's client for forwarding ``/services/...`` (closed by ``stop``)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))

    def port_of(self, name: str) -> int | None:
        """The local port of service ``name``'s HTTP door (``None`` for an unknown name)."""
        child = self.children.get(name)
        return child.port if child else None

    async def start(self) -> None:
        """Start every child and wait until each answers ``/healthz`` (raises if one cannot)."""
        for child in self.children.values():
            await self._spawn(child)
        try:
            await asyncio.gather(*(self._ready(c) for c in self.children.values()))
        except BaseException:
            await self.stop()
            raise
        for child in self.children.values():
            child.watcher = asyncio.create_task(self._watch(child))

    async def health(self, name: str) -> dict[str, Any]:
        """Service ``name``'s process: pid, restarts, and whether its ``/healthz`` says ok."""
        child = self.children[name]
        process = child.process
        state: dict[str, Any] = {
            "ok": False,
            "process": "child",
            "pid": process.pid if process else None,
            "restarts": child.restarts,
        }
        if process is None or process.returncode is not None:
            state["error"] = "not running (being restarted)"
            return state
        try:
            answer = await self.http.get(f"http://127.0.0.1:{child.port}/healthz", timeout=1.0)
        except httpx.HTTPError as exc:
            state["error"] = f"health check failed: {type(exc).__name__}"
            return state
        state["ok"] = answer.status_code == 200
        if not state["ok"]:
            state["error"] = f"its /healthz answered HTTP {answer.status_code}"
        return state

    async def _spawn(self, child: _Child) -> None:
        child.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "frontdoor.cli",
            "serve",
            child.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(child.port),
            env=self._env[child.name],
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        log.info("service process started", service=child.name, pid=child.process.pid)

    async def _ready(self, child: _Child) -> None:
        url = f"http://127.0.0.1:{child.port}/healthz"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                assert child.process is not None
                if child.process.returncode is not None:
                    raise RuntimeError(
                        f"service {child.name} exited with code {child.process.returncode} "
                        "while starting (its log is above)"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                if loop.time() > deadline:
                    raise RuntimeError(f"service {child.name} was not ready in {READY_TIMEOUT} s")
                await asyncio.sleep(0.2)

    async def _watch(self, child: _Child) -> None:
        """Restart ``child`` whenever it dies (with back-off), until ``stop``."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            assert child.process is not None
            started = loop.time()
            code = await child.process.wait()
            if self._stopping:
                return
            if loop.time() - started > STABLE_AFTER:
                child.restarts = 0
            delay = RESTART_BACKOFF[min(child.restarts, len(RESTART_BACKOFF) - 1)]
            child.restarts += 1
            log.error(
                "service process died; starting it again",
                service=child.name,
                code=code,
                in_seconds=delay,
                restarts=child.restarts,
            )
            await asyncio.sleep(delay)
            if not self._stopping:
                await self._spawn(child)

    async def stop(self) -> None:
        """SIGTERM every child, wait for them (``STOP_TIMEOUT``), kill what is left."""
        self._stopping = True
        for child in self.children.values():
            if child.watcher is not None:
                child.watcher.cancel()
        running = [
            c.process
            for c in self.children.values()
            if c.process is not None and c.process.returncode is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await self.http.aclose()
        log.info("service processes stopped")
