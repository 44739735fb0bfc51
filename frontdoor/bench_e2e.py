"""``frontdoor bench e2e``: concurrent conversations through the REST webhook and WebSockets.

Without ``--url`` it starts its own stack (``frontdoor up`` in a child process: embedded
nats-server, services, gateway, on a free port, data in a temporary directory, rate limit
raised for the run) and stops it afterwards. Each conversation sends ``--turns`` messages one
after the other (a user waits for the answer); conversations run concurrently. A turn counts as
answered when it got at least one reply that is not the "still working" note. The client is
aiohttp: httpx's client costs several times more CPU per request and would be what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import typer

from events.embedded import free_port
from events.errors import FrontdoorError

#: A mix of turns: greetings and help (answered by the bot) and a request that goes through a
#: service (intent on NATS -> analysis -> reply on the bus). "which services are up?" is left out:
#: its answer waits for a fixed $SRV.PING discovery window (~0.5 s) by design.
DEFAULT_MESSAGES = (
    "hi",
    "how many tickets were opened this week?",
    "what can you do?",
    "how many tickets were opened this week?",
)
WORKING_PREFIX = "Still working on it"


class BenchError(FrontdoorError):
    """The benchmark cannot run (front door not ready)."""


@dataclass
class ChannelStats:
    """Latencies (s) and failures of one channel's run."""

    channel: str
    latencies: list[float] = field(default_factory=list)
    unanswered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def error(self, kind: str) -> None:
        """Count one failed turn of ``kind``."""
        self.unanswered += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self, turns: int) -> dict[str, Any]:
        """The numbers: turns/s, p50/p95/p99 (ms), answered."""
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))] * 1000, 2)

        return {
            "channel": self.channel,
            "turns": turns,
            "answered": len(lat),
            "unanswered": self.unanswered,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed, 3),
            "turns_per_s": round(turns / self.elapsed, 1) if self.elapsed else None,
            "p50_ms": pct(50),
            "p95_ms": pct(95),
            "p99_ms": pct(99),
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
            "all_answered": self.unanswered == 0 and len(lat) == turns,
        }


async def _rest_conversation(
    client: aiohttp.ClientSession, stats: ChannelStats, run: str, n: int, turns: int, bot: str
) -> None:
    sender = f"bench-{run}-{n}"
    for t in range(turns):
        text = DEFAULT_MESSAGES[t % len(DEFAULT_MESSAGES)]
        body = {"sender": sender, "message": text, "metadata": {"bot": bot}}
        start = time.perf_counter()
        try:
            async with client.post("/webhooks/rest/webhook", json=body) as r:
                status = r.status
                answer = await r.json() if status == 200 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.error(type(exc).__name__)
            continue
        took = time.perf_counter() - start
        if status != 200 or not isinstance(answer, list):
            stats.error(f"http_{status}")
            continue
        texts = [m.get("text", "") for m in answer]
        if not texts or any(x.startswith(WORKING_PREFIX) for x in texts):
            stats.error("no_answer_in_time")
            continue
        stats.latencies.append(took)


async def _ws_conversation(
    client: aiohttp.ClientSession, stats: ChannelStats, n: int, turns: int, bot: str
) -> None:
    async with client.post("/api/session") as r:
        session = await r.json()
    async with client.ws_connect(f"/ws?token={session['token']}") as ws:
        await ws.receive_json()  # hello
        for t in range(turns):
            text = DEFAULT_MESSAGES[t % len(DEFAULT_MESSAGES)]
            client_id = f"{n}-{t}"
            start = time.perf_counter()
            await ws.send_json(
                {"type": "message", "text": text, "bot": bot, "client_id": client_id}
            )
            correlation: str | None = None
            replies = 0
            working = False
            try:
                async with asyncio.timeout(30):
                    while True:
                        frame = await ws.receive_json()
                        kind = frame.get("type")
                        if kind == "ack" and frame.get("client_id") == client_id:
                            correlation = frame["correlation_id"]
                        elif kind == "reply" and frame.get("correlation_id") == correlation:
                            replies += 1
                            working = working or frame.get("status") == "working"
                        elif kind == "error":
                            raise RuntimeError(frame.get("code", "error"))
                        elif (
                            kind == "typing"
                            and not frame.get("active")
                            and frame.get("correlation_id") == correlation
                        ):
                            break
            except TimeoutError:
                stats.error("timeout")
                continue
            except (RuntimeError, TypeError, ValueError) as exc:
                stats.error(str(exc) or type(exc).__name__)
                continue
            took = time.perf_counter() - start
            if replies == 0 or working:
                stats.error("no_answer_in_time")
                continue
            stats.latencies.append(took)


async def run_bench(
    url: str, *, conversations: int, turns: int, channels: list[str], bot: str = "chatbot"
) -> list[dict[str, Any]]:
    """Run the benchmark against ``url``; one summary per channel."""
    run = uuid.uuid4().hex[:8]
    results: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=conversations + 10)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        # warm-up (not measured): is the front door able to answer at all?
        for text in DEFAULT_MESSAGES:
            body = {"sender": f"bench-{run}-warm", "message": text, "metadata": {"bot": bot}}
            async with client.post("/webhooks/rest/webhook", json=body) as r:
                if r.status != 200:
                    raise BenchError(f"warm-up turn answered HTTP {r.status}: {await r.text()}")
                said = " ".join(m.get("text", "") for m in await r.json())
            if "not available" in said:
                raise BenchError(
                    f"the front door cannot understand messages yet ({said!r}); train and "
                    "publish an NLU model first (docs/web-channel.md, 'End-to-end benchmark')"
                )
        # ... then the same load once on other senders (connection pools, caches, code paths)
        warm = ChannelStats("warm-up")
        await asyncio.gather(
            *(
                _rest_conversation(client, warm, f"{run}-warm", n, len(DEFAULT_MESSAGES), bot)
                for n in range(conversations)
            )
        )
        for channel in channels:
            stats = ChannelStats(channel)
            start = time.perf_counter()
            if channel == "rest":
                await asyncio.gather(
                    *(
                        _rest_conversation(client, stats, run, n, turns, bot)
                        for n in range(conversations)
                    )
                )
            else:
                await asyncio.gather(
                    *(_ws_conversation(client, stats, n, turns, bot) for n in range(conversations))
                )
            stats.elapsed = time.perf_counter() - start
            results.append(stats.summary(conversations * turns))
    return results


@contextlib.contextmanager
def own_stack(conversations: int) -> Any:
    """``frontdoor up`` in a child process on a free port; yields its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fd-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "FRONTDOOR_NATS_URL")}
        env.update(
            FRONTDOOR_RATE_LIMIT=str(1_000_000),
            FRONTDOOR_LOG_LEVEL="warning",
            PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        )
        log_path = Path(tmp) / "up.log"
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
                    str(Path(tmp) / "data"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"frontdoor up exited:\n{log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"frontdoor up not ready:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.25)
            yield base
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def register(bench_app: typer.Typer) -> None:
    """Add ``frontdoor bench e2e``."""

    @bench_app.command("e2e")
    def e2e(
        url: str | None = typer.Option(None, help="A running front door (default: start one)"),
        conversations: int = typer.Option(50, min=1, help="Concurrent conversations"),
        turns: int = typer.Option(20, min=1, help="Turns per conversation"),
        channel: str = typer.Option("both", help="rest, ws or both"),
        bot: str = typer.Option("chatbot", help="Bot to talk to"),
        as_json: bool = typer.Option(False, "--json", help="Print JSON"),
    ) -> None:
        """Concurrent end-to-end turns: turns/s, latency p50/p95/p99, all answered?"""
        if channel not in ("rest", "ws", "both"):
            raise typer.BadParameter("choose rest, ws or both", param_hint="--channel")
        channels = ["rest", "ws"] if channel == "both" else [channel]

        def go(base: str) -> list[dict[str, Any]]:
            return asyncio.run(
                run_bench(
                    base, conversations=conversations, turns=turns, channels=channels, bot=bot
                )
            )

        try:
            if url:
                results = go(url.rstrip("/"))
            else:
                with own_stack(conversations) as base:
                    results = go(base)
        except (BenchError, RuntimeError, aiohttp.ClientError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps({"conversations": conversations, "results": results}, indent=2))
        else:
            for r in results:
                typer.echo(
                    f"{r['channel']:>4}: {r['turns']} turns in {r['elapsed_s']} s = "
                    f"{r['turns_per_s']} turns/s; latency p50 {r['p50_ms']} ms, "
                    f"p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms; answered "
                    f"{r['answered']}/{r['turns']}"
                    + (f" (failures: {r['errors']})" if r["errors"] else "")
                )
        if not all(r["all_answered"] for r in results):
            raise typer.Exit(1)
