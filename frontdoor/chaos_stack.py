"""The production shape on one machine, for ``frontdoor bench chaos``: a three-node NATS cluster
running the deployment's ``nats-cluster.conf`` (every component its own user), two gateways and
two instances of every service, each a ``frontdoor serve`` process, PostgreSQL when reachable.

Each process can be killed (SIGKILL, by its own PID) and started again on the same port. The
gateways share the session secret and the claims signing key; the services get only the public
keys and their own NATS user (never a gateway secret), as in a deployment. Slack's Web API is
the stand-in ``frontdoor.slack_standin.FakeSlack`` (run by the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backend_services.registry import service_names
from events.claims import KeyRing, SigningKey
from events.cluster import LocalCluster
from events.compartments import (
    ROUTE_PASSWORD_VARIABLE,
    ROUTE_USER,
    SERVER_NAME_VARIABLE,
    password_variable,
    render_cluster_config,
    route_url_variable,
)
from events.embedded import free_port
from frontdoor.bench_e2e import BENCH_ENV
from frontdoor.nats_deploy import SERVER_USERS
from frontdoor.processes import die_with_parent

#: Services that keep rows in a database: two instances need a shared PostgreSQL.
DATABASE_SERVICES = ("management", "marketing")
#: What Slack is in the bench: its signing secret, the bot's token, the channel of the support bot.
SLACK_SECRET = "chaos-" + "0" * 26
SLACK_TOKEN = "xoxb-0000000000-0000000000-chaosbenchtoken000000"
SLACK_CHANNEL = "CCHAOS1"
#: How long a process may take to answer ``/healthz`` after it was started.
READY_TIMEOUT = 180.0

Progress = Callable[[str], None]


@dataclass
class Component:
    """One ``frontdoor serve`` process (``gateway-1``, ``management-2``, ...)."""

    name: str
    component: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    #: every PID it ran with, in order (a restart adds one)
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """Whether its process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it (again) on its port."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "frontdoor.cli",
                    "serve",
                    self.component,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        self.pids.append(self.process.pid)

    def kill(self) -> None:
        """SIGKILL it (its own PID) and reap it."""
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until its ``/healthz`` answers 200 (raises with its log's tail if it exits)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited while starting:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} was not ready in {timeout:g} s:\n{self.tail()}"
                    )
                await asyncio.sleep(0.25)

    def tail(self, chars: int = 3000) -> str:
        """The end of its log."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""


def _write_private(path: Path, data: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    return path


def _base_env() -> dict[str, str]:
    """Our environment without anything that would point a component elsewhere."""
    drop = ("NATS_URL", "SLACK_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("FRONTDOOR_") or k.startswith(drop))
    }
    env.update(BENCH_ENV)
    env["FRONTDOOR_NATS_REPLICAS"] = "3"
    return env


class PostgresDatabase:
    """A fresh database on a PostgreSQL server for one run, dropped afterwards."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"fd_chaos_{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        """The run's database URL (the admin URL with the database replaced)."""
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base}/{self.name}"

    async def _admin(self, statement: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    async def create(self) -> None:
        """``CREATE DATABASE`` (raises when the server cannot be reached)."""
        await asyncio.wait_for(self._admin(f'CREATE DATABASE "{self.name}"'), 10)

    async def drop(self) -> None:
        """``DROP DATABASE ... WITH (FORCE)``; never raises."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'), 20
            )


class ChaosStack:
    """The cluster, the gateways and the services of one bench run, under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        slack_api_url: str,
        postgres_url: str | None,
        instances: int = 2,
        gateways: int = 2,
    ) -> None:
        self.root = root
        self.slack_api_url = slack_api_url
        self.passwords = {user: secrets.token_hex(16) for user in SERVER_USERS}
        self.database = PostgresDatabase(postgres_url) if postgres_url else None
        self.instances = instances
        self.gateway_count = gateways
        self.cluster: LocalCluster | None = None
        self.gateways: list[Component] = []
        self.services: dict[str, list[Component]] = {}
        #: why management and marketing run once, when they do
        self.single_reason: str | None = None

    # -- URLs ------------------------------------------------------------------------------

    def nats_url(self, user: str) -> str:
        """Every node's URL with ``user``'s credentials (what that component's NATS_URL is)."""
        assert self.cluster is not None
        secret = self.passwords[user]
        return ",".join(
            f"nats://{user}:{secret}@127.0.0.1:{node.port}" for node in self.cluster.nodes
        )

    @property
    def database_url(self) -> str | None:
        """The shared database of management and marketing (``None``: SQLite, one each)."""
        return self.database.url if self.database and self.single_reason is None else None

    def components(self) -> list[Component]:
        """Every gateway and service process."""
        return [*self.gateways, *(c for group in self.services.values() for c in group)]

    # -- start and stop --------------------------------------------------------------------

    async def start(self, progress: Progress) -> None:
        """Cluster, keys, database, model, then the gateways and services (all ready)."""
        self.root.mkdir(parents=True, exist_ok=True)
        await self._start_cluster(progress)
        await self._open_database(progress)
        models = await self._train_model(progress)
        keys = self._write_keys()
        session_secret = secrets.token_urlsafe(32)
        cache = self.root / "model-cache"
        for i in range(self.gateway_count):
            env = _base_env() | {
                "NATS_URL": self.nats_url("gateway"),
                "FRONTDOOR_DATA_DIR": str(self.root / f"gateway-{i + 1}"),
                "FRONTDOOR_SESSION_SECRET": session_secret,
                "FRONTDOOR_CLAIMS_SIGNING_KEY_FILE": str(keys["signing"]),
                "FRONTDOOR_NLU_MODELS_DIR": str(models),
                "FRONTDOOR_NLU_CACHE_DIR": str(cache),
                "SLACK_SIGNING_SECRET": SLACK_SECRET,
                "SLACK_BOT_TOKEN": SLACK_TOKEN,
                "SLACK_API_URL": self.slack_api_url,
                "FRONTDOOR_SLACK_CHANNEL_BOTS": f"{SLACK_CHANNEL}:support",
            }
            self.gateways.append(self._component(f"gateway-{i + 1}", "gateway", env))
        for name in service_names():
            count = self.instances
            if name in DATABASE_SERVICES and self.database_url is None:
                count = 1
            group = []
            for i in range(count):
                env = _base_env() | {
                    "NATS_URL": self.nats_url(name),
                    "FRONTDOOR_DATA_DIR": str(self.root / f"{name}-{i + 1}"),
                    "FRONTDOOR_CLAIMS_PUBLIC_KEYS_FILE": str(keys["public"]),
                    "FRONTDOOR_NLU_CACHE_DIR": str(cache),
                }
                if name in DATABASE_SERVICES and self.database_url:
                    env["FRONTDOOR_DATABASE_URL"] = self.database_url
                group.append(self._component(f"{name}-{i + 1}", name, env))
            self.services[name] = group
        # The first gateway creates the streams; everything else starts together after it.
        first, *others = self.components()
        progress(f"starting {first.name}")
        first.start()
        await first.wait_ready()
        progress(f"starting {', '.join(c.name for c in others)}")
        for component in others:
            component.start()
        await asyncio.gather(*(c.wait_ready() for c in others))

    def _component(self, name: str, component: str, env: dict[str, str]) -> Component:
        Path(env["FRONTDOOR_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        return Component(name, component, free_port(), env, self.root / f"{name}.log")

    async def _start_cluster(self, progress: Progress) -> None:
        config = self.root / "nats-cluster.conf"
        # the deployment's file, but each node keeps its store where LocalCluster puts it (-sd)
        rendered = render_cluster_config("frontdoor", 3)
        config.write_text(re.sub(r"(?m)^\s*store_dir: .*\n", "", rendered, count=1))
        route = (ROUTE_USER, self.passwords[ROUTE_USER])
        env = {password_variable(u): p for u, p in self.passwords.items()}
        env[ROUTE_PASSWORD_VARIABLE] = self.passwords[ROUTE_USER]
        env[SERVER_NAME_VARIABLE] = "unused"  # each node's -n names it
        self.cluster = LocalCluster(
            self.root / "nats",
            3,
            config=config,
            env=env,
            route_credentials=route,
            probe_credentials=("cli", self.passwords["cli"]),
        )
        for i, url in enumerate(self.cluster.route_urls(), start=1):
            env[route_url_variable(i)] = url
        progress("starting a three-node NATS cluster (the deployment's nats-cluster.conf)")
        await self.cluster.start()

    async def _open_database(self, progress: Progress) -> None:
        if self.database is None:
            self.single_reason = "no PostgreSQL given: one instance each (SQLite)"
            return
        try:
            await self.database.create()
        except Exception as exc:
            self.single_reason = (
                f"PostgreSQL not reachable ({type(exc).__name__}): one instance each (SQLite)"
            )
            progress(self.single_reason)
            return
        progress(f"PostgreSQL database {self.database.name} created for this run")

    async def _train_model(self, progress: Progress) -> Path:
        from frontdoor.default_model import ensure_default_model
        from skills.nlu.lifecycle.registry import DirectoryRegistry

        models = self.root / "models"
        progress("training the NLU model the gateways share")
        with contextlib.redirect_stdout(sys.stderr):  # its log line would break --json
            await ensure_default_model(DirectoryRegistry(models))
        return models

    def _write_keys(self) -> dict[str, Path]:
        key = SigningKey.generate()
        folder = self.root / "keys"
        return {
            "signing": _write_private(folder / "claims-signing.pem", key.to_pem().decode()),
            "public": _write_private(
                folder / "claims-public.jwks.json", json.dumps(KeyRing([key.public]).to_jwks())
            ),
        }

    async def stop(self) -> None:
        """Stop every process and node, drop the run's database."""
        running = [c for c in reversed(self.components()) if c.alive]
        for component in running:
            assert component.process is not None
            component.process.terminate()
        for component in running:
            component.stop()  # waits for it, kills it after 15 s
        if self.cluster is not None:
            self.cluster.stop()
        if self.database is not None and self.single_reason is None:
            await self.database.drop()
