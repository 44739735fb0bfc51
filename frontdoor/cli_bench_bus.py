"""``frontdoor bench bus``: measure the bus on this machine."""

from __future__ import annotations

import json
import os

import typer
from rich.console import Console
from rich.table import Table

from frontdoor.bench_bus import BenchResult, run_bench
from frontdoor.eventloop import run

PUBLISH_TARGET = 20_000.0
P50_TARGET_MS = 2.0


def _print_table(result: BenchResult) -> None:
    console = Console()
    where = "embedded nats-server" if result.embedded else result.nats_url
    table = Table(title=f"frontdoor bench bus ({where}, {result.event_loop} event loop)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    ok = result.acked_publishes_per_s >= PUBLISH_TARGET
    table.add_row(
        f"acked publishes/s (FD_EVENTS, {result.events} events, window {result.window})",
        f"{result.acked_publishes_per_s:,.0f}",
        f"{'ok' if ok else 'MISSED'} >= {PUBLISH_TARGET:,.0f}",
    )
    for lat in result.latency:
        target = ""
        if lat.in_flight == 50:
            met = lat.p50_ms < P50_TARGET_MS
            target = f"{'ok' if met else 'MISSED'} p50 < {P50_TARGET_MS} ms"
        table.add_row(
            f"intent->handler->reply, {lat.in_flight} in flight ({lat.requests} requests)",
            f"p50 {lat.p50_ms:.2f} ms  p99 {lat.p99_ms:.2f} ms  "
            f"({lat.round_trips_per_s:,.0f} round trips/s)",
            target,
        )
        server_cpu = lat.nats_server_cpu_us_per_round_trip
        table.add_row(
            f"  CPU per round trip, {lat.in_flight} in flight",
            f"client+service process {lat.process_cpu_us_per_round_trip:,.0f} µs"
            + (f", nats-server {server_cpu:,.0f} µs" if server_cpu is not None else ""),
            "",
        )
    console.print(table)


def register(bench_app: typer.Typer) -> None:
    """Attach ``bus`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("bus")
    def bench_bus(
        events: int = typer.Option(20_000, "--events", min=100, help="Events to publish."),
        window: int = typer.Option(2_000, "--window", min=1, help="Max pending acks."),
        requests: int = typer.Option(
            2_000, "--requests", min=10, help="Round trips per latency level."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        loop: str = typer.Option(
            "auto", "--loop", help="Event loop: auto (uvloop when installed), uvloop, asyncio."
        ),
    ) -> None:
        """Acked publish throughput and intent round-trip latency (1 and 50 in flight).

        Starts a private embedded nats-server unless NATS_URL is set.
        """
        from frontdoor.logs import configure_logging

        if loop not in ("auto", "uvloop", "asyncio"):
            raise typer.BadParameter("use auto, uvloop or asyncio", param_hint="--loop")
        configure_logging("console", "warning")  # logs to stderr: stdout is the table / JSON
        result = run(
            run_bench(
                events=events,
                window=window,
                requests=requests,
                nats_url=os.environ.get("NATS_URL") or None,
            ),
            loop,  # type: ignore[arg-type]
        )
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            _print_table(result)
