"""``frontdoor up --split``: each backend service in a supervised child process.

In one process every service shares the gateway's event loop and Python's one core (the GIL).
With ``--split`` ``up`` keeps the embedded nats-server and the gateway, and runs each service as
``frontdoor serve <service>`` in a child process on a free local port (the production shape,
see ``docs/spine.md``), so a machine's cores are all used. Each child connects to NATS with its
own service's credential (never the gateway's) and inherits none of the gateway's secrets. A
child that dies is started again with back-off; the children stop before the nats-server does,
and die with ``up`` even if it is killed (Linux parent-death signal).

The gateway forwards ``/services/<name>/...`` (the services' HTTP doors and e.g. analysis's
chart images) to the child, so URLs are the same in both shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from fastapi import APIRouter, Request, Response

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
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host"}
#: Settings of the gateway a service process must not inherit (its NATS user is its own).
_GATEWAY_ONLY = frozenset(
    {
        "NATS_URL",
        "FRONTDOOR_NATS_URL",
        "FRONTDOOR_CLAIMS_SIGNING_KEY",
        "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE",
        "FRONTDOOR_SESSION_SECRET",
    }
)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class _Child:
    name: str
    port: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class ServiceProcesses:
    """Starts, watches and stops one ``frontdoor serve <service>`` child per service."""

    def __init__(self, names: list[str], nats_url: Callable[[str], str]) -> None:
        """``nats_url(name)``: where service ``name`` connects, with its own credential."""
        self.children = {name: _Child(name, free_port()) for name in names}
        self._nats_url = nats_url
        # What only the gateway holds stays out of the services' environment.
        self._env = {k: v for k, v in os.environ.items() if k not in _GATEWAY_ONLY}
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
            env={**self._env, "NATS_URL": self._nats_url(child.name)},
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
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


def forwarding_router(processes: ServiceProcesses) -> APIRouter:
    """``/services/<name>/<path>`` forwarded to service ``name``'s child process."""
    router = APIRouter()

    @router.api_route(
        "/services/{name}/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def forward(name: str, path: str, request: Request) -> Response:
        port = processes.port_of(name)
        if port is None:
            return Response(status_code=404, content=f"no service {name!r}".encode())
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            answer = await processes.http.request(
                request.method,
                f"http://127.0.0.1:{port}/services/{name}/{path}",
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        except httpx.HTTPError:
            return Response(status_code=503, content=f"service {name} is unavailable".encode())
        return Response(
            content=answer.content,
            status_code=answer.status_code,
            headers={
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in _HOP_HEADERS | {"content-length", "content-encoding"}
            },
        )

    return router
