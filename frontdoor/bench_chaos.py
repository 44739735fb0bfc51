"""``frontdoor bench chaos``: conversations through the production shape while its parts die.

On this machine it starts a three-node NATS cluster, two gateways and two instances of every
service (``frontdoor.chaos_stack``), and drives conversations over REST, WebSocket and signed
Slack events (``frontdoor.chaos_clients``). While they run it kills -9 the NATS node that leads
the event stream and starts it again, kills one instance of each service and starts it again,
and kills one gateway for good (its users move to the other). Then it checks, against the event
stream itself, that every reply was delivered exactly once and in order, that every turn was
answered, and that every ticket a user was told about exists exactly once in management's
database, and reports turns/s, latencies, the longest stall, and how long each fault took to
recover from. ``--single`` drives the same mix against one ``frontdoor up`` (no faults): the
baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import aiohttp

from events import subjects
from events.bus import Bus
from events.payloads import Reply
from frontdoor.bench_e2e import own_stack
from frontdoor.chaos_clients import CHANNELS, Conversation, Transcript
from frontdoor.chaos_stack import (
    SLACK_CHANNEL,
    SLACK_SECRET,
    SLACK_TOKEN,
    ChaosStack,
    Component,
)
from frontdoor.proc_cpu import process_cpu_seconds
from frontdoor.slack_standin import FakeSlack

Progress = Callable[[str], None]
#: Which channel conversation ``n`` uses.
CHANNEL_ORDER = ("rest", "ws", "slack")
#: When each fault happens, as a share of the run's duration.
FAULT_AT = {"nats": 0.15, "services": 0.4, "gateway": 0.65}


@dataclass
class ChaosOptions:
    """What to run."""

    conversations: int = 50
    duration: float = 120.0
    faults: bool = True
    single: bool = False
    postgres_url: str | None = None
    log_dir: Path | None = None
    nats_down: float = 5.0
    service_down: float = 3.0


@dataclass
class Fault:
    """One fault as it happened."""

    kind: str
    target: str
    at: float
    pids_before: list[int]
    pids_after: list[int] = field(default_factory=list)
    restarted_at: float | None = None


# -- faults ------------------------------------------------------------------------------------


async def _event_stream_leader(stack: ChaosStack) -> str | None:
    """The node leading ``FD_EVENTS`` (asked as the operator's user ``cli``)."""
    with contextlib.suppress(Exception):
        bus = await Bus.connect(stack.nats_url("cli"), ensure=False, connect_timeout=3)
        try:
            info = await bus.js.stream_info(subjects.EVENT_STREAM)
            return info.cluster.leader if info.cluster else None
        finally:
            await bus.close()
    return None


async def _kill_nats(stack: ChaosStack, start: float, down: float) -> Fault:
    assert stack.cluster is not None
    leader = await _event_stream_leader(stack)
    node = next((n for n in stack.cluster.nodes if n.name == leader), stack.cluster.nodes[0])
    fault = Fault("nats node", node.name, time.monotonic() - start, [node.pid or 0])
    stack.cluster.kill_node(node)
    await asyncio.sleep(down)
    stack.cluster.start_node(node)
    fault.restarted_at = time.monotonic() - start
    fault.pids_after = [node.pid or 0]
    return fault


async def _kill_services(stack: ChaosStack, start: float, down: float) -> Fault:
    victims = [group[0] for group in stack.services.values()]
    fault = Fault(
        "service instances",
        ", ".join(v.name for v in victims),
        time.monotonic() - start,
        [v.pids[-1] for v in victims],
    )
    for victim in victims:
        victim.kill()
    await asyncio.sleep(down)
    for victim in victims:
        victim.start()
    fault.restarted_at = time.monotonic() - start
    fault.pids_after = [v.pids[-1] for v in victims]
    await asyncio.gather(*(v.wait_ready() for v in victims))
    return fault


async def _kill_gateway(stack: ChaosStack, start: float) -> Fault:
    victim = stack.gateways[-1]
    fault = Fault("gateway", victim.name, time.monotonic() - start, [victim.pids[-1]])
    victim.kill()  # for good: its users move to the other gateway
    return fault


async def _faults(stack: ChaosStack, options: ChaosOptions, start: float) -> list[Fault]:
    async def at(share: float) -> None:
        await asyncio.sleep(max(0.0, start + share * options.duration - time.monotonic()))

    async def nats() -> Fault:
        await at(FAULT_AT["nats"])
        return await _kill_nats(stack, start, options.nats_down)

    async def services() -> Fault:
        await at(FAULT_AT["services"])
        return await _kill_services(stack, start, options.service_down)

    async def gateway() -> Fault:
        await at(FAULT_AT["gateway"])
        return await _kill_gateway(stack, start)

    return list(await asyncio.gather(nats(), services(), gateway()))


# -- CPU per component -------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds per component, sampled every second by PID (a killed process loses at most
    its last second)."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]]) -> None:
        self.pids = pids
        self.last: dict[int, float] = {}
        self.total: dict[str, float] = {}

    def sample(self) -> None:
        for component, pids in self.pids().items():
            for pid in pids:
                now = process_cpu_seconds(pid)
                if now is None:
                    continue
                spent = now - self.last.get(pid, now)
                self.total[component] = self.total.get(component, 0.0) + spent
                self.last[pid] = now

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(1.0)


def _stack_pids(stack: ChaosStack) -> dict[str, list[int]]:
    pids: dict[str, list[int]] = {}
    for component in stack.components():
        if component.alive:
            pids.setdefault(component.component, []).append(component.pids[-1])
    assert stack.cluster is not None
    pids["nats-server"] = [n.pid for n in stack.cluster.nodes if n.pid is not None]
    pids["bench client"] = [os.getpid()]
    return pids


# -- checks ------------------------------------------------------------------------------------


async def bus_replies(url: str) -> dict[tuple[str, str | None], list[tuple[int, str, Reply]]]:
    """Every reply on ``FD_EVENTS`` by (conversation id, thread): ``(seq, envelope id, reply)``."""
    bus = await Bus.connect(url, ensure=False)
    found: dict[tuple[str, str | None], list[tuple[int, str, Reply]]] = {}
    try:
        flt = subjects.events_filter(envelope_type="reply")
        async for seq, env in bus.tail(flt, 1, stop_at_end=True):
            key = (env.conversation.id, env.conversation.thread)
            found.setdefault(key, []).append((seq, str(env.id), env.payload_as(Reply)))
    finally:
        await bus.close()
    return found


def compare(expected: list[str], got: list[str]) -> dict[str, int]:
    """What ``got`` lost, doubled and reordered of ``expected`` (both in delivery order)."""
    wanted, had = Counter(expected), Counter(got)
    lost = sum((wanted - had).values())
    duplicated = sum((had - wanted).values())
    blocks = SequenceMatcher(None, expected, got, autojunk=False).get_matching_blocks()
    in_order = sum(b.size for b in blocks)
    return {
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": max(0, len(got) - duplicated - in_order),
    }


def check_delivery(
    transcripts: Iterable[Transcript],
    on_bus: dict[tuple[str, str | None], list[tuple[int, str, Reply]]],
    problems: list[str] | None = None,
) -> dict[str, int]:
    """Per conversation, what its user received against its replies on the bus (what differs
    is described in ``problems``)."""
    from bots.slack.format import reply_text

    totals: Counter[str] = Counter()
    for tr in transcripts:
        replies = on_bus.get((tr.conversation_id, tr.thread), [])
        if tr.channel == "ws":  # frames carry the envelope id and sequence
            expected = [rid for _, rid, _ in replies]
            got = [r.id or "" for r in tr.received]
            seqs = [r.seq or 0 for r in tr.received]
            totals["reordered_seq"] += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
        else:  # REST and Slack answer with texts (progress notes are not answers)
            answers = [reply for _, _, reply in replies if reply.status != "working"]
            show: Callable[[Reply], str] = reply_text if tr.channel == "slack" else _plain
            expected = [show(reply) for reply in answers]
            got = [r.text for r in tr.received]
        totals["on_bus"] += len(expected)
        totals["delivered"] += len(got)
        found = compare(expected, got)
        totals.update(found)
        if problems is not None and any(found.values()):
            wanted, had = Counter(expected), Counter(got)
            problems.append(
                f"{tr.channel} #{tr.n} ({tr.conversation_id} {tr.thread or ''}): {found}; "
                f"lost {list((wanted - had).elements())[:3]}, "
                f"doubled {list((had - wanted).elements())[:3]}"
            )
    return dict(totals)


def _plain(reply: Reply) -> str:
    return reply.text


async def check_tickets(database_url: str | None, told: list[str]) -> dict[str, Any]:
    """Every ticket a user was told about exists once; no other ticket was made."""
    counts = Counter(told)
    result: dict[str, Any] = {
        "told": len(told),
        "told_twice": sum(n - 1 for n in counts.values() if n > 1),
    }
    if database_url is None:
        result["in_database"] = None
        return result
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("select id from mgmt_tickets"))).scalars().all()
    finally:
        await engine.dispose()
    ids = {str(i) for i in rows}
    result["in_database"] = len(rows)
    result["missing"] = sorted(set(counts) - ids, key=int)
    # a ticket made that no user was told about: a turn or an intent ran twice
    result["untold"] = sorted(ids - set(counts), key=int)
    return result


# -- the run -----------------------------------------------------------------------------------


def _latency_summary(
    transcripts: list[Transcript], elapsed: float, until: float | None = None
) -> dict[str, Any]:
    """Throughput and latencies; the longest stall counts until ``until`` (the end of the
    run's duration: afterwards fewer and fewer conversations are still finishing a turn)."""
    turns = [t for tr in transcripts for t in tr.turns]
    done = sorted(
        t.answered_at
        for t in turns
        if t.answered_at is not None and (until is None or t.answered_at <= until)
    )
    took = sorted(t.answered_at - t.sent_at for t in turns if t.answered_at is not None)

    def pct(p: float) -> float | None:
        return (
            round(took[min(len(took) - 1, round(p * (len(took) - 1)))] * 1000, 1) if took else None
        )

    gaps = [b - a for a, b in itertools.pairwise(done)]
    return {
        "turns_per_s": round(len(took) / elapsed, 1) if elapsed else None,
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(took) * 1000, 1) if took else None,
        "longest_turn_s": round(took[-1], 2) if took else None,
        "longest_stall_s": round(max(gaps), 2) if gaps else None,
    }


def _recovery(fault: Fault, transcripts: list[Transcript], start: float) -> dict[str, Any]:
    """How long until every turn in flight at the fault (or sent while it lasted) was answered."""
    at = start + fault.at
    until = start + (fault.restarted_at or fault.at)
    hit = [
        t
        for tr in transcripts
        for t in tr.turns
        if t.sent_at <= until and (t.answered_at is None or t.answered_at > at)
    ]
    answered = [t.answered_at for t in hit if t.answered_at is not None]
    return {
        "kind": fault.kind,
        "target": fault.target,
        "at_s": round(fault.at, 2),
        "down_s": round(fault.restarted_at - fault.at, 2) if fault.restarted_at else None,
        "pids_before": fault.pids_before,
        "pids_after": fault.pids_after,
        "turns_in_flight": len(hit),
        "unanswered": len(hit) - len(answered),
        "recovery_s": round(max(answered) - at, 2) if answered else 0.0,
    }


async def drive(
    urls: list[str],
    options: ChaosOptions,
    slack: FakeSlack,
    progress: Progress,
    during: Callable[[float], Any] | None = None,
) -> tuple[list[Transcript], float, float, Any]:
    """Run the conversations for ``options.duration`` s; ``during(start)`` runs alongside."""
    run = uuid.uuid4().hex[:8]
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=options.conversations + 10)
    async with aiohttp.ClientSession(connector=connector) as http:
        conversations: list[Conversation] = []
        for n in range(options.conversations):
            kind = CHANNELS[CHANNEL_ORDER[n % len(CHANNEL_ORDER)]]
            conversations.append(kind(n, urls, http, run, slack=slack))
        start = time.monotonic()
        tasks = [asyncio.create_task(c.run(stop)) for c in conversations]
        side = asyncio.create_task(during(start)) if during else None
        ticker = asyncio.create_task(_tick(conversations, start, options.duration, progress))
        await asyncio.sleep(options.duration)
        stop.set()
        ticker.cancel()
        progress("stopping: each conversation finishes its turn")
        transcripts = list(await asyncio.gather(*tasks))
        elapsed = time.monotonic() - start
        outcome = await side if side else None
    return transcripts, start, elapsed, outcome


async def _tick(
    conversations: list[Conversation], start: float, duration: float, progress: Progress
) -> None:
    while True:
        await asyncio.sleep(10)
        answered = sum(
            1 for c in conversations for t in c.transcript.turns if t.answered_at is not None
        )
        progress(f"{time.monotonic() - start:5.0f}/{duration:g} s: {answered} turns answered")


def _report(
    options: ChaosOptions,
    transcripts: list[Transcript],
    elapsed: float,
    delivery: dict[str, int],
    tickets: dict[str, Any],
    start: float | None = None,
) -> dict[str, Any]:
    until = start + options.duration if start is not None else None
    turns = [t for tr in transcripts for t in tr.turns]
    unanswered = [t for t in turns if t.answered_at is None]
    by_channel: dict[str, Counter[str]] = {}
    for tr in transcripts:
        c = by_channel.setdefault(tr.channel, Counter())
        c["conversations"] += 1
        c["turns"] += len(tr.turns)
        c["answered"] += sum(1 for t in tr.turns if t.answered_at is not None)
        c["moved"] += tr.moves
        c["retried"] += sum(t.attempts - 1 for t in tr.turns)
    for channel, c in by_channel.items():
        took = sorted(
            t.answered_at - t.sent_at
            for tr in transcripts
            if tr.channel == channel
            for t in tr.turns
            if t.answered_at is not None
        )
        for name, share in (("p50_ms", 0.5), ("p99_ms", 0.99)):
            if took:
                c[name] = round(took[round(share * (len(took) - 1))] * 1000)
    ticket_dups = tickets.get("told_twice", 0) + len(tickets.get("untold") or [])
    lost = len(unanswered) + delivery.get("lost", 0) + len(tickets.get("missing") or [])
    duplicated = delivery.get("duplicated", 0) + ticket_dups
    out_of_order = delivery.get("out_of_order", 0) + delivery.get("reordered_seq", 0)
    return {
        "conversations": options.conversations,
        "duration_s": options.duration,
        "elapsed_s": round(elapsed, 1),
        "turns_sent": len(turns),
        "turns_answered": len(turns) - len(unanswered),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        **_latency_summary(transcripts, elapsed, until),
        "channels": {k: dict(v) for k, v in by_channel.items()},
        "replies": delivery,
        "tickets": tickets,
        "failures": [
            f"{tr.channel} #{tr.n} turn {t.index}: {t.failure}"
            for tr in transcripts
            for t in tr.turns
            if t.failure
        ][:20],
        "ok": lost == 0 and duplicated == 0 and out_of_order == 0,
    }


async def run_chaos(options: ChaosOptions, progress: Progress) -> dict[str, Any]:
    """The whole bench; the report."""
    slack = FakeSlack()
    await slack.start()
    root = options.log_dir or Path(tempfile.mkdtemp(prefix="fd-chaos-"))
    try:
        if options.single:
            return await _run_single(options, slack, root, progress)
        return await _run_cluster(options, slack, root, progress)
    finally:
        await slack.stop()
        if options.log_dir is None:
            shutil.rmtree(root, ignore_errors=True)


async def _run_cluster(
    options: ChaosOptions, slack: FakeSlack, root: Path, progress: Progress
) -> dict[str, Any]:
    stack = ChaosStack(root, slack_api_url=slack.api_url, postgres_url=options.postgres_url)
    try:
        await stack.start(progress)
        meter = CpuMeter(lambda: _stack_pids(stack))
        meter.sample()
        sampler = asyncio.create_task(meter.run())
        urls = [g.url for g in stack.gateways]
        progress(f"driving {options.conversations} conversations for {options.duration:g} s")

        async def faults(start: float) -> list[Fault]:
            return await _faults(stack, options, start) if options.faults else []

        transcripts, start, elapsed, done = await drive(urls, options, slack, progress, faults)
        meter.sample()
        sampler.cancel()
        progress("checking the event stream, the Slack posts and the tickets")
        problems: list[str] = []
        on_bus = await bus_replies(stack.nats_url("cli"))
        delivery = check_delivery(transcripts, on_bus, problems)
        told = [t.ticket for tr in transcripts for t in tr.turns if t.ticket]
        tickets = await check_tickets(_management_db(stack), told)
        report = _report(options, transcripts, elapsed, delivery, tickets, start)
        report["failures"] += problems[:20]
        report["shape"] = {
            "nats_nodes": 3,
            "gateways": len(stack.gateways),
            "instances": {name: len(group) for name, group in stack.services.items()},
            "database": "postgresql" if stack.database_url else "sqlite",
            "note": stack.single_reason,
        }
        report["faults"] = [_recovery(f, transcripts, start) for f in done or []]
        report["cpu_ms_per_turn"] = _cpu_per_turn(meter, report["turns_answered"])
        if options.log_dir is not None:
            report["logs"] = str(root)
        return report
    except BaseException:
        if options.log_dir is None:  # keep what explains the failure
            for component in stack.components():
                progress(f"--- {component.name} ---\n{component.tail(1500)}")
        raise
    finally:
        await stack.stop()


def _management_db(stack: ChaosStack) -> str:
    if stack.database_url:
        return stack.database_url
    first: Component = stack.services["management"][0]
    path = Path(first.env["FRONTDOOR_DATA_DIR"]) / "management.db"
    return f"sqlite+aiosqlite:///{path.resolve()}"


def _cpu_per_turn(meter: CpuMeter, turns: int) -> dict[str, float]:
    if not turns:
        return {}
    return {k: round(v * 1000 / turns, 3) for k, v in sorted(meter.total.items())}


async def _run_single(
    options: ChaosOptions, slack: FakeSlack, root: Path, progress: Progress
) -> dict[str, Any]:
    """The same conversations against one ``frontdoor up`` process, without faults."""
    from frontdoor.local_nats import NATS_PID_FILE, attach_url

    env = {
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "FRONTDOOR_SLACK_CHANNEL_BOTS": f"{SLACK_CHANNEL}:support",
    }
    data = root / "single"
    progress("starting one `frontdoor up` process")
    with own_stack(env=env, data_dir=data) as (base, pids):
        nats_pid = int((data / NATS_PID_FILE).read_text())
        meter = CpuMeter(
            lambda: {"frontdoor up": pids, "nats-server": [nats_pid], "bench client": [os.getpid()]}
        )
        meter.sample()
        sampler = asyncio.create_task(meter.run())
        progress(f"driving {options.conversations} conversations for {options.duration:g} s")
        transcripts, start, elapsed, _ = await drive([base], options, slack, progress)
        meter.sample()
        sampler.cancel()
        url = attach_url(data)
        assert url is not None, "the embedded nats-server's URL file is gone"
        problems: list[str] = []
        delivery = check_delivery(transcripts, await bus_replies(url), problems)
        told = [t.ticket for tr in transcripts for t in tr.turns if t.ticket]
        database = f"sqlite+aiosqlite:///{(data / 'management.db').resolve()}"
        tickets = await check_tickets(database, told)
    report = _report(options, transcripts, elapsed, delivery, tickets, start)
    report["failures"] += problems[:20]
    report["shape"] = {"single": "one `frontdoor up` process (embedded nats-server)"}
    report["cpu_ms_per_turn"] = _cpu_per_turn(meter, report["turns_answered"])
    return report
