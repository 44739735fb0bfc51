"""``frontdoor bench limits``: what a rate-limit check costs, in memory and shared in NATS KV.

A request to the gateway passes three limits (``bots.web.guard``): its address is counted, its
failed authentications are checked, its caller is counted. This command measures one counted
hit and one such request with ``FRONTDOOR_RATE_LIMIT_STORAGE=memory`` and ``=nats`` (on a
private embedded nats-server), one at a time: latency p50/p99 and CPU per request, this
process's and the nats-server's. With ``nats`` it also measures a caller whose requests
alternate between two gateways (every write then finds the key moved by the other and reads
it again, before writing it), and ``--in-flight`` requests at once, of many callers (their KV
operations share socket writes), of one caller (its hits share one KV write per batch), and
of many callers alternating between two gateways.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer

from bots.web.guard import EdgeGuard
from bots.web.settings import WebSettings
from bots.web.shared_limits import SharedWindowStorage, rate_limits_for
from events.bus import Bus
from events.embedded import EmbeddedNats
from frontdoor.eventloop import run
from frontdoor.proc_cpu import process_cpu_seconds

#: Limits no benchmark reaches: every check is counted and admitted.
_UNREACHED = {
    "rate_limit": 10**9,
    "address_rate_limit": 10**9,
    "session_rate_limit": 10**9,
    "auth_failure_limit": 10**9,
}


def _guard(bus: Bus, storage: str) -> EdgeGuard:
    settings = WebSettings(rate_limit_storage=storage, **_UNREACHED)  # type: ignore[arg-type]
    return EdgeGuard(settings, rate_limits_for(settings, bus))


def _scope(i: int, keys: int) -> dict[str, Any]:
    n = i % keys
    return {"type": "http", "client": (f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 40000)}


async def _request(guard: EdgeGuard, i: int, keys: int) -> None:
    """What every request of a caller passes (``bots.web.guard.authenticated``)."""
    await guard.admit(_scope(i, keys))
    await guard.limits.hit(guard.caller, f"guest:w-{i % keys:032x}")


async def _measure(
    op: Callable[[int], Awaitable[None]], n: int, server_pid: int | None, warm: int = 200
) -> dict[str, float]:
    """Latency of ``n`` calls one after another, and the CPU they took (µs per call), after
    ``warm`` calls (buckets opened, keys created, each process knows the keys it shares)."""
    for i in range(warm):
        await op(i)
    latencies: list[float] = []
    server0 = process_cpu_seconds(server_pid) if server_pid else None
    cpu0 = time.process_time()
    for i in range(n):
        started = time.perf_counter()
        await op(i)
        latencies.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu0
    server1 = process_cpu_seconds(server_pid) if server_pid else None
    cuts = statistics.quantiles(latencies, n=100)
    out = {
        "p50_us": round(cuts[49] * 1e6, 1),
        "p99_us": round(cuts[98] * 1e6, 1),
        "cpu_us": round(cpu / n * 1e6, 1),
    }
    if server0 is not None and server1 is not None:
        out["nats_server_cpu_us"] = round((server1 - server0) / n * 1e6, 1)
    return out


async def _in_flight(
    op: Callable[[int], Awaitable[None]], n: int, in_flight: int, server_pid: int | None
) -> dict[str, float]:
    """``n`` calls, ``in_flight`` at a time: calls/s and CPU each."""
    sem = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with sem:
            await op(i)

    server0 = process_cpu_seconds(server_pid) if server_pid else None
    cpu0, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    server1 = process_cpu_seconds(server_pid) if server_pid else None
    out = {"requests_per_s": round(n / elapsed), "cpu_us": round(cpu / n * 1e6, 1)}
    if server0 is not None and server1 is not None:
        out["nats_server_cpu_us"] = round((server1 - server0) / n * 1e6, 1)
    return out


async def _conflicts(guard: EdgeGuard) -> int:
    storage = guard.limits.storage
    assert isinstance(storage, SharedWindowStorage)
    return (await storage.counters()).conflicts


async def run_bench(requests: int, keys: int, in_flight: int) -> dict[str, Any]:
    """Measure memory and NATS KV limits on a private embedded nats-server."""
    with tempfile.TemporaryDirectory(prefix="frontdoor-bench-limits-") as tmp:
        server = EmbeddedNats(Path(tmp) / "nats")
        await server.start()
        one = await Bus.connect(server.url)
        two = await Bus.connect(server.url, ensure=False)
        try:
            result: dict[str, Any] = {"requests": requests, "keys": keys}
            for storage in ("memory", "nats"):
                guard = _guard(one, storage)
                pid = server.pid if storage == "nats" else None

                async def hit(i: int, guard: EdgeGuard = guard) -> None:
                    await guard.limits.hit(guard.caller, f"guest:w-{i % keys:032x}")

                async def request(i: int, guard: EdgeGuard = guard) -> None:
                    await _request(guard, i, keys)

                async def one_caller(i: int, guard: EdgeGuard = guard) -> None:
                    await _request(guard, 0, 1)

                result[storage] = {
                    "hit": await _measure(hit, requests, pid),
                    "request": await _measure(request, requests, pid),
                    f"request_{in_flight}_in_flight": await _in_flight(
                        request, requests, in_flight, pid
                    ),
                    f"request_{in_flight}_in_flight_one_caller": await _in_flight(
                        one_caller, requests, in_flight, pid
                    ),
                }
            first, second = _guard(one, "nats"), _guard(two, "nats")

            async def alternating(i: int) -> None:
                await _request((first, second)[i % 2], i // 2, keys)

            for i in range(4 * keys):  # each gateway learns which keys the other writes too
                await alternating(i)
            before = await _conflicts(first) + await _conflicts(second)
            measured = await _measure(alternating, requests, server.pid, warm=0)
            lost = await _conflicts(first) + await _conflicts(second) - before
            measured["conflicts_per_request"] = round(lost / requests, 2)
            result["nats"]["request_alternating_2_gateways"] = measured
            before = await _conflicts(first) + await _conflicts(second)
            measured = await _in_flight(alternating, requests, in_flight, server.pid)
            lost = await _conflicts(first) + await _conflicts(second) - before
            measured["conflicts_per_request"] = round(lost / requests, 2)
            result["nats"][f"request_{in_flight}_in_flight_alternating"] = measured
            return result
        finally:
            await two.close()
            await one.close()
            await server.stop()


def _line(name: str, m: dict[str, float]) -> str:
    server = f", nats-server {m['nats_server_cpu_us']:.0f} µs" if "nats_server_cpu_us" in m else ""
    conflicts = (
        f", {m['conflicts_per_request']:.2f} lost writes" if "conflicts_per_request" in m else ""
    )
    if "requests_per_s" in m:
        return (
            f"  {name}: {m['requests_per_s']:,.0f}/s, CPU {m['cpu_us']:.0f} µs each"
            f"{server}{conflicts}"
        )
    return (
        f"  {name}: p50 {m['p50_us']:.0f} µs, p99 {m['p99_us']:.0f} µs, "
        f"CPU {m['cpu_us']:.0f} µs{server}{conflicts}"
    )


def register(bench_app: typer.Typer) -> None:
    """Attach ``limits`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("limits")
    def bench_limits(
        requests: int = typer.Option(
            5_000, "--requests", min=100, help="Checks (and requests) in each measurement."
        ),
        keys: int = typer.Option(
            1_000, "--keys", min=1, help="Distinct callers and addresses the checks cycle over."
        ),
        in_flight: int = typer.Option(
            50, "--in-flight", min=1, help="Concurrent requests in the in-flight measurements."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Cost of a rate-limit check and of a request's three limits, in memory and shared in
        NATS KV (FRONTDOOR_RATE_LIMIT_STORAGE), on a private embedded nats-server: latency
        p50/p99 and CPU (this process, and the nats-server's)."""
        from frontdoor.logs import configure_logging

        configure_logging("console", "warning")  # logs to stderr: stdout is the result
        result = run(run_bench(requests, keys, in_flight))
        if as_json:
            typer.echo(json.dumps(result))
            return
        for storage in ("memory", "nats"):
            typer.echo(f"{storage}:")
            for name, measured in result[storage].items():
                typer.echo(_line(name, measured))
