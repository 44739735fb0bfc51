"""A NATS JetStream cluster on one machine: several ``nats-server`` processes on loopback ports.

For ``frontdoor bench chaos`` and the tests that prove Frontdoor survives losing a node: each
node has its own name, client port, cluster port and store directory, and routes to the others.
A node can be killed (SIGKILL, by its own PID) and started again with the same ports and store.

With ``config`` every node also reads that file (e.g. the deployment's ``nats-cluster.conf``,
with users and an authenticated cluster): ``route_credentials`` then go into the route URLs and
``probe_credentials`` (a user of the config) are what ``wait_ready`` connects with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from events.embedded import find_nats_server, free_port
from events.errors import EmbeddedServerError


async def _quiet(_exc: Exception) -> None:
    """nats-py prints every failed connection attempt; a node still starting is expected."""


@dataclass
class ClusterNode:
    """One server of the cluster."""

    name: str
    port: int
    cluster_port: int
    store: Path
    #: monitoring (``/healthz``, ``/jsz``) on loopback
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self.process.pid if self.process and self.process.poll() is None else None


class LocalCluster:
    """``size`` nats-server processes forming one JetStream cluster named ``name``."""

    def __init__(
        self,
        data_dir: Path,
        size: int = 3,
        *,
        name: str = "frontdoor",
        config: Path | None = None,
        env: dict[str, str] | None = None,
        route_credentials: tuple[str, str] | None = None,
        probe_credentials: tuple[str, str] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.data_dir = Path(data_dir)
        self.name = name
        self.config = config
        self.env = env
        self.route_credentials = route_credentials
        self.probe_credentials = probe_credentials
        self.binary = find_nats_server()
        self.nodes = [
            ClusterNode(f"n{i + 1}", free_port(), free_port(), self.data_dir / f"n{i + 1}")
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's URL, comma separated (what ``NATS_URL`` takes)."""
        return ",".join(node.url for node in self.nodes)

    def route_urls(self) -> list[str]:
        """Every node's route URL (with the route credentials, if any)."""
        auth = ""
        if self.route_credentials is not None:
            auth = "{}:{}@".format(*self.route_credentials)
        return [f"nats://{auth}127.0.0.1:{node.cluster_port}" for node in self.nodes]

    def _args(self, node: ClusterNode) -> list[str]:
        routes = ",".join(
            url
            for other, url in zip(self.nodes, self.route_urls(), strict=True)
            if other is not node
        )
        args = [self.binary]
        if self.config is not None:
            args += ["-c", str(self.config)]
        args += [
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(node.port),
            "-n",
            node.name,
            "-m",
            str(node.http_port),
            "-sd",
            str(node.store),
            "--cluster_name",
            self.name,
            "--cluster",
            f"nats://127.0.0.1:{node.cluster_port}",
            "--routes",
            routes,
            "-l",
            str(self.data_dir / f"{node.name}.log"),
        ]
        return args

    async def start(self, timeout: float = 30.0) -> str:
        """Start every node and wait until JetStream has a meta leader; return ``url``."""
        for node in self.nodes:
            self.start_node(node)
        await self.wait_ready(timeout)
        return self.url

    def start_node(self, node: ClusterNode) -> None:
        """Start (or restart) ``node`` with its ports and store."""
        if node.pid is not None:
            return
        node.store.mkdir(parents=True, exist_ok=True)
        node.process = subprocess.Popen(
            self._args(node),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=None if self.env is None else {**os.environ, **self.env},
        )

    def kill_node(self, node: ClusterNode) -> None:
        """SIGKILL ``node`` (by its own PID) and reap it."""
        if node.process is not None and node.process.poll() is None:
            os.kill(node.process.pid, signal.SIGKILL)
            node.process.wait()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every running node accepts clients and JetStream answers on one of them."""
        import nats

        from events.compartments import inbox_prefix

        user = self.probe_credentials
        auth = "{}:{}@".format(*user) if user else ""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(
                    servers=[
                        n.url.replace("nats://", f"nats://{auth}")
                        for n in self.nodes
                        if n.pid is not None
                    ],
                    connect_timeout=1,
                    allow_reconnect=False,
                    error_cb=_quiet,
                    inbox_prefix=inbox_prefix(user[0]) if user else "_INBOX",
                )
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.2)
                continue
            try:
                await nc.jetstream(timeout=2).account_info()
                return
            except Exception as exc:  # no meta leader yet
                last = exc
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await nc.close()
        self.stop()
        raise EmbeddedServerError(f"the NATS cluster was not ready in {timeout:g}s: {last!r}")

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL)."""
        for node in self.nodes:
            process = node.process
            if process is None or process.poll() is not None:
                continue
            process.terminate()
        for node in self.nodes:
            process = node.process
            if process is None:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
