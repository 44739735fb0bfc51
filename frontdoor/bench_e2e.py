"""``frontdoor bench e2e``: concurrent conversations through the REST webhook and WebSockets.

Without ``--url`` it starts its own stack on a free port, data in a temporary directory, rate
limit raised for the run: ``frontdoor up`` in a child process (embedded nats-server, every
service and the gateway in one process), or with ``--split`` ``frontdoor up --split`` (each
service in its own process, the production shape); it waits until the stack has settled
(healthy, then idle: what it does in the background after start-up is not measured) and stops
it afterwards. It then also
reports the CPU time the stack's processes (nats-server included) spent per turn, a number that
other load on the machine hardly changes. Each conversation plays ``SCRIPT`` (greeting, help, a
ticket opened through the form, its status, metrics questions answered by the analysis
service, something out of scope) turn after turn (a user waits for the answer); conversations
run concurrently. A turn counts as answered when its replies (no "still working" note among
them) match the turn's expected pattern. The client is aiohttp: httpx's client costs several
times more CPU per request and would be what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
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
from frontdoor.proc_cpu import tree_cpu_by_role


@dataclass(frozen=True)
class ScriptTurn:
    """One user turn of the benchmark's conversation: bot, text, what the answer must match."""

    bot: str
    text: str
    expect: str
    save_ticket: bool = False


#: What every benchmark conversation says, over and over. ``{n}`` is the conversation's number,
#: ``{ticket}`` the ticket number the form turn got. Bot-only turns (greeting, help, the form's
#: questions, out of scope) and service turns (ticket create/status through management,
#: metrics through analysis). "which services are up?" is left out: its answer waits for a
#: fixed $SRV.PING discovery window (~0.5 s) by design.
SCRIPT: tuple[ScriptTurn, ...] = (
    ScriptTurn("chatbot", "hi", r"\w"),
    ScriptTurn("chatbot", "what can you do?", r"(?i)ticket"),
    ScriptTurn("support", "I need to open a ticket", r"(?i)subject|title|summar"),
    ScriptTurn("support", "VPN drops every {n} minutes on floor 3", r"(?i)descri|detail|more"),
    ScriptTurn(
        "support",
        "Since this morning the VPN client disconnects and I lose my SSH sessions.",
        r"(?i)e-?mail|contact|reach",
    ),
    ScriptTurn("support", "user{n}@example.com", r"(?i)priority"),
    ScriptTurn("support", "high", r"#\d+", save_ticket=True),
    ScriptTurn("support", "what's the status of ticket #{ticket}?", r"(?i)open|new"),
    ScriptTurn("chatbot", "how many tickets were opened this week?", r"\d"),
    ScriptTurn("chatbot", "show me the containment rate for today", r"\d"),
    ScriptTurn("chatbot", "can you order me a pizza with pineapple?", r"(?i)sorry|can.?t|cannot"),
    ScriptTurn("chatbot", "thanks, bye", r"\w"),
)
#: Where a conversation may start in ``SCRIPT`` (turns that need no earlier turn): conversation
#: ``n`` starts at ``STARTS[n % len(STARTS)]``, so like real users the conversations are at
#: different stages at any moment instead of all opening tickets in the same instant.
STARTS = (0, 8, 2, 10, 1, 9, 11)
TICKET = re.compile(r"#(\d+)")
#: What a benchmark's own stack runs with: every benchmark conversation comes from this one
#: address (limits raised), quiet logs, and this checkout's code in every child process.
BENCH_ENV = {
    "FRONTDOOR_RATE_LIMIT": str(1_000_000),
    "FRONTDOOR_ADDRESS_RATE_LIMIT": str(100_000_000),
    "FRONTDOOR_SESSION_RATE_LIMIT": str(1_000_000),
    "FRONTDOOR_WS_MAX_CONNECTIONS_PER_ADDRESS": str(100_000),
    "FRONTDOOR_AGENT_RATE_LIMIT": str(1_000_000),
    "FRONTDOOR_LOG_LEVEL": "warning",
    "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
}
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
    cpu_s: float | None = None
    #: CPU seconds of the measured turns by process role (``proc_cpu.process_role``)
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    by_turn: dict[str, list[float]] = field(default_factory=dict)

    def ok(self, turn: ScriptTurn, took: float) -> None:
        """Count one answered turn that took ``took`` seconds."""
        self.latencies.append(took)
        self.by_turn.setdefault(turn.text, []).append(took)

    def error(self, kind: str) -> None:
        """Count one failed turn of ``kind``."""
        self.unanswered += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self, turns: int) -> dict[str, Any]:
        """The numbers: turns/s, p50/p95/p99 (ms), answered, stack CPU per turn (ms)."""
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
            "stack_cpu_ms_per_turn": (
                round(self.cpu_s * 1000 / turns, 3) if self.cpu_s is not None and turns else None
            ),
            "cpu_ms_per_turn_by_process": {
                role: round(cpu * 1000 / turns, 3) for role, cpu in sorted(self.cpu_by_role.items())
            }
            if turns
            else {},
            "all_answered": self.unanswered == 0 and len(lat) == turns,
            "p99_ms_by_turn": {
                text: round(sorted(xs)[round(0.99 * (len(xs) - 1))] * 1000, 1)
                for text, xs in self.by_turn.items()
            },
        }


class ScriptState:
    """The script's state for one conversation (its number and the ticket it opened)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.start = STARTS[n % len(STARTS)]
        self.ticket = "1"  # replaced by the ticket the form opens (always before it is asked)

    def text(self, turn: ScriptTurn) -> str:
        return turn.text.format(n=self.n, ticket=self.ticket)

    def check(self, turn: ScriptTurn, texts: list[str]) -> str | None:
        """``None`` when ``texts`` answer ``turn``; else the kind of failure."""
        if not texts or any(x.startswith(WORKING_PREFIX) for x in texts):
            return "no_answer_in_time"
        said = "\n".join(texts)
        if not re.search(turn.expect, said):
            return "unexpected_answer"
        if turn.save_ticket and (m := TICKET.search(said)):
            self.ticket = m.group(1)
        return None


@dataclass
class _Phases:
    """A channel run: ``warm_turns`` unmeasured turns per conversation (new users: sessions,
    roles, conversation state and caches are set up), everyone waits at ``barrier``, then the
    measured turns continue the same conversations."""

    warm: ChannelStats
    measured: ChannelStats
    warm_turns: int
    barrier: asyncio.Barrier

    def stats(self, t: int) -> ChannelStats:
        return self.warm if t < self.warm_turns else self.measured

    async def at(self, t: int) -> None:
        if t == self.warm_turns:
            await self.barrier.wait()


async def session_token(client: aiohttp.ClientSession) -> str:
    """A new guest session's token (each bench conversation is a new visitor)."""
    async with client.post("/api/session") as r:
        if r.status != 200:
            raise BenchError(f"POST /api/session answered HTTP {r.status}: {await r.text()}")
        return str((await r.json())["token"])


async def _rest_conversation(
    client: aiohttp.ClientSession, phases: _Phases, run: str, n: int, turns: int
) -> None:
    headers = {"Authorization": f"Bearer {await session_token(client)}"}
    conv = ScriptState(n)
    for t in range(phases.warm_turns + turns):
        await phases.at(t)
        stats = phases.stats(t)
        turn = SCRIPT[(conv.start + t) % len(SCRIPT)]
        body = {"message": conv.text(turn), "metadata": {"bot": turn.bot}}
        start = time.perf_counter()
        try:
            async with client.post("/webhooks/rest/webhook", json=body, headers=headers) as r:
                status = r.status
                answer = await r.json() if status == 200 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.error(type(exc).__name__)
            continue
        took = time.perf_counter() - start
        if status != 200 or not isinstance(answer, list):
            stats.error(f"http_{status}")
            continue
        failure = conv.check(turn, [str(m.get("text", "")) for m in answer])
        if failure:
            stats.error(failure)
            continue
        stats.ok(turn, took)


async def _ws_conversation(
    client: aiohttp.ClientSession, phases: _Phases, n: int, turns: int
) -> None:
    token = await session_token(client)
    conv = ScriptState(n)
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "auth", "token": token})
        await ws.receive_json()  # hello
        for t in range(phases.warm_turns + turns):
            await phases.at(t)
            stats = phases.stats(t)
            turn = SCRIPT[(conv.start + t) % len(SCRIPT)]
            client_id = f"{n}-{t}"
            start = time.perf_counter()
            await ws.send_json(
                {
                    "type": "message",
                    "text": conv.text(turn),
                    "bot": turn.bot,
                    "client_id": client_id,
                }
            )
            correlation: str | None = None
            texts: list[str] = []
            try:
                async with asyncio.timeout(30):
                    while True:
                        frame = await ws.receive_json()
                        kind = frame.get("type")
                        if kind == "ack" and frame.get("client_id") == client_id:
                            correlation = frame["correlation_id"]
                        elif kind == "reply" and frame.get("correlation_id") == correlation:
                            text = str(frame.get("text", ""))
                            if frame.get("status") == "working":
                                text = WORKING_PREFIX
                            texts.append(text)
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
            failure = conv.check(turn, texts)
            if failure:
                stats.error(failure)
                continue
            stats.ok(turn, took)


async def _run_channel(
    client: aiohttp.ClientSession,
    channel: str,
    run: str,
    conversations: int,
    turns: int,
    stack_pids: list[int] | None,
) -> list[dict[str, Any]]:
    """One channel: a script cycle per conversation unmeasured (first contact), then ``turns``
    measured turns continuing those conversations; both summaries (first contact first)."""
    phases = _Phases(
        warm=ChannelStats(f"{channel} first contact"),
        measured=ChannelStats(channel),
        warm_turns=len(SCRIPT),
        barrier=asyncio.Barrier(conversations + 1),
    )

    async def one(n: int) -> None:
        try:
            if channel == "rest":
                await _rest_conversation(client, phases, run, n, turns)
            else:
                await _ws_conversation(client, phases, n, turns)
        except BaseException:
            await phases.barrier.abort()  # do not leave the others waiting
            raise

    warm_start = time.perf_counter()
    tasks = [asyncio.create_task(one(n)) for n in range(conversations)]
    try:
        await phases.barrier.wait()
    except asyncio.BrokenBarrierError:
        await asyncio.gather(*tasks)  # raises the conversation's error
        raise
    phases.warm.elapsed = time.perf_counter() - warm_start
    cpu_before = tree_cpu_by_role(stack_pids) if stack_pids else None
    start = time.perf_counter()
    await asyncio.gather(*tasks)
    phases.measured.elapsed = time.perf_counter() - start
    cpu_after = tree_cpu_by_role(stack_pids) if stack_pids else None
    if cpu_before is not None and cpu_after is not None:
        phases.measured.cpu_by_role = {
            role: cpu - cpu_before.get(role, 0.0) for role, cpu in cpu_after.items()
        }
        phases.measured.cpu_s = sum(phases.measured.cpu_by_role.values())
    return [
        phases.warm.summary(conversations * len(SCRIPT)),
        phases.measured.summary(conversations * turns),
    ]


async def background_load(
    client: aiohttp.ClientSession, conversations: int, stop: asyncio.Event
) -> ChannelStats:
    """Run ``conversations`` benchmark conversations (even numbers REST, odd WebSocket) until
    ``stop`` is set; all their turns (first contact included) in one ``ChannelStats``.

    Load beside another measurement (``frontdoor bench workspace``): the same drivers and
    script as the benchmark's own run, stopped from outside instead of after a turn count.
    """
    stats = ChannelStats("load")  # first contact included: the load is all of its turns
    phases = _Phases(
        warm=stats,
        measured=stats,
        warm_turns=len(SCRIPT),
        barrier=asyncio.Barrier(1),  # nobody waits for the others
    )
    run = uuid.uuid4().hex[:8]
    endless = 10**9

    async def one(n: int) -> None:
        if n % 2 == 0:
            await _rest_conversation(client, phases, run, n, endless)
        else:
            await _ws_conversation(client, phases, n, endless)

    start = time.perf_counter()
    tasks = [asyncio.create_task(one(n)) for n in range(conversations)]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    phases.measured.elapsed = time.perf_counter() - start
    return phases.measured


def cpu_seconds(pids: list[int] | None) -> float | None:
    """CPU time (user + system) of processes ``pids`` and their children alive now (Linux)."""
    by_role = tree_cpu_by_role(pids) if pids else None
    return sum(by_role.values()) if by_role is not None else None


async def run_bench(
    url: str,
    *,
    conversations: int,
    turns: int,
    channels: list[str],
    stack_pids: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Run the benchmark against ``url``; one summary per channel (with the CPU time per turn
    of processes ``stack_pids`` and their children, when given)."""
    run = uuid.uuid4().hex[:8]
    results: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=conversations + 10)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        # warm-up (not measured): is the front door able to answer at all?
        body = {"message": "hi", "metadata": {"bot": "chatbot"}}
        headers = {"Authorization": f"Bearer {await session_token(client)}"}
        async with client.post("/webhooks/rest/webhook", json=body, headers=headers) as r:
            if r.status != 200:
                raise BenchError(f"warm-up turn answered HTTP {r.status}: {await r.text()}")
            said = " ".join(m.get("text", "") for m in await r.json())
        if "not available" in said:
            raise BenchError(
                f"the front door cannot understand messages yet ({said!r}); train and "
                "publish an NLU model first (docs/web-channel.md, 'End-to-end benchmark')"
            )
        for channel in channels:
            results += await _run_channel(client, channel, run, conversations, turns, stack_pids)
    return results


def _wait_healthy(base: str, procs: list[subprocess.Popen[bytes]], log_path: Path) -> None:
    deadline = time.monotonic() + 300  # the first start may train the NLU model
    while True:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"the stack exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stack is not ready:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.25)


def wait_settled(pids: list[int], *, idle_share: float = 0.1, limit: float = 120.0) -> None:
    """Wait until the stack's processes use under ``idle_share`` of a core (over 0.5 s).

    Healthy is not yet settled: after ``/healthz`` answers, a stack still finishes work it
    started in the background (the experts' knowledge indexes load an encoder, long-lived
    objects are frozen), seconds of a full core that would otherwise land in the first
    measured turns. Gives up quietly after ``limit`` seconds.
    """
    deadline = time.monotonic() + limit
    before = cpu_seconds(pids)
    while before is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        after = cpu_seconds(pids)
        if after is None or after - before < idle_share * 0.5:
            return
        before = after


@contextlib.contextmanager
def own_stack(
    *, split: bool = False, env: dict[str, str] | None = None, data_dir: Path | None = None
) -> Any:
    """Start a stack on a free port in a temporary directory; yield ``(base URL, pids)``.

    ``frontdoor up`` in a child process: one process (embedded nats-server, every service and
    the gateway), or with ``split`` ``frontdoor up --split`` (each service in its own process).
    ``env`` is added to its environment; ``data_dir`` replaces the temporary data directory.
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fd-bench-") as tmp:
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "FRONTDOOR_NATS_URL")}
        env.update(BENCH_ENV)
        env.update(extra)
        data = data_dir or Path(tmp) / "data"
        log_path = Path(tmp) / "stack.log"
        procs: list[subprocess.Popen[bytes]] = []
        base = f"http://127.0.0.1:{port}"
        with log_path.open("wb") as log:

            def spawn(*args: str) -> None:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "frontdoor.cli", *args],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

            try:
                spawn(
                    "up",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(data),
                    *(["--split"] if split else []),
                )
                _wait_healthy(base, procs, log_path)
                pids = [p.pid for p in procs]
                wait_settled(pids)
                yield base, pids
            finally:
                for proc in reversed(procs):
                    proc.send_signal(signal.SIGINT)
                for proc in reversed(procs):
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
        split: bool = typer.Option(
            False,
            "--split",
            help="Start `frontdoor up --split` (each service in its own process) instead of "
            "`frontdoor up` in one process",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON"),
    ) -> None:
        """Concurrent end-to-end turns: turns/s, latency p50/p95/p99, all answered?"""
        if channel not in ("rest", "ws", "both"):
            raise typer.BadParameter("choose rest, ws or both", param_hint="--channel")
        channels = ["rest", "ws"] if channel == "both" else [channel]

        def go(base: str, pids: list[int] | None) -> list[dict[str, Any]]:
            return asyncio.run(
                run_bench(
                    base,
                    conversations=conversations,
                    turns=turns,
                    channels=channels,
                    stack_pids=pids,
                )
            )

        try:
            if url:
                results = go(url.rstrip("/"), None)
            else:
                with own_stack(split=split) as (base, pids):
                    results = go(base, pids)
        except (BenchError, RuntimeError, aiohttp.ClientError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps({"conversations": conversations, "results": results}, indent=2))
        else:
            for r in results:
                cpu = r["stack_cpu_ms_per_turn"]
                typer.echo(
                    f"{r['channel']:>4}: {r['turns']} turns in {r['elapsed_s']} s = "
                    f"{r['turns_per_s']} turns/s; latency p50 {r['p50_ms']} ms, "
                    f"p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms; answered "
                    f"{r['answered']}/{r['turns']}"
                    + (f"; stack CPU {cpu} ms/turn" if cpu is not None else "")
                    + _by_process(r["cpu_ms_per_turn_by_process"])
                    + (f" (failures: {r['errors']})" if r["errors"] else "")
                )
        if not all(r["all_answered"] for r in results):
            raise typer.Exit(1)


def _by_process(cpu_ms: dict[str, float]) -> str:
    """`` (nats-server 0.4, up 1.9)``: CPU ms per turn of each process role, when measured."""
    if not cpu_ms:
        return ""
    return " (" + ", ".join(f"{role} {ms}" for role, ms in cpu_ms.items()) + ")"
