"""``frontdoor bench workspace``: inbox open time with many tickets and waiting conversations,
and an agent's reply to the widget, alone and beside ``bench e2e``'s load
(``frontdoor.bench_workspace``)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import typer

from frontdoor.bench_e2e import BenchError, own_stack
from frontdoor.bench_workspace import run
from frontdoor.bench_workspace_seed import prepare_agent, progress


def measure(tickets: int, waiting: int, replies: int, opens: int, split: bool) -> dict[str, Any]:
    """Make the agent, start a stack on that data, run the benchmark; the report."""
    with tempfile.TemporaryDirectory(prefix="fd-bench-workspace-") as tmp:
        data = Path(tmp) / "data"
        progress("creating the agent (frontdoor users)")
        api_key = prepare_agent(data)
        progress("starting the stack")
        with own_stack(split=split, data_dir=data) as (base, _pids):
            report = asyncio.run(
                run(base, api_key, tickets=tickets, waiting=waiting, replies=replies, opens=opens)
            )
    report["split"] = split
    return report


def _line(name: str, stats: dict[str, Any]) -> str:
    return (
        f"  {name}: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, "
        f"max {stats['max_ms']} ms (n={stats['count']})"
    )


def summary(report: dict[str, Any]) -> str:
    """The report, readable."""
    opened = report["inbox_open"]
    load = report["load"]
    lines = [
        f"{report['tickets']} tickets (seeded in {report['seed_tickets_s']} s), "
        f"{report['inbox_listed']} waiting conversations (seeded in {report['seed_waiting_s']} s, "
        f"{report['widget_guests']} on WebSockets)",
        f"inbox open (snapshot {opened['snapshot_bytes']} bytes, "
        f"{opened['tickets_listed']} tickets listed):",
        _line("page (session, then snapshot and tickets)", opened["page"]),
        _line("GET session", opened["session"]),
        _line("stream to first snapshot", opened["snapshot"]),
        _line("GET open tickets", opened["tickets"]),
        _line("GET inbox (JSON)", opened["inbox_json"]),
    ]
    for key, label in (("reply_alone", "alone"), ("reply_under_load", "beside the e2e load")):
        r = report[key]
        lines.append(f"agent reply -> widget, {label}: lost {r['lost']}/{r['replies']}")
        lines.append(_line("reply to widget", r["to_widget"]))
        lines.append(_line("POST reply answered", r["post_answered"]))
    lines.append(
        f"e2e load: {load['conversations']} conversations, {load['turns']} turns, "
        f"{load['turns_per_s']} turns/s, p50 {load['latency']['p50_ms']} ms, "
        f"p99 {load['latency']['p99_ms']} ms, unanswered {load['unanswered']}"
    )
    lines.append(
        "targets: "
        + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in report["targets"].items())
    )
    return "\n".join(lines)


def register(bench_app: typer.Typer) -> None:
    """Attach ``workspace`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("workspace")
    def bench_workspace(
        tickets: int = typer.Option(10_000, min=0, help="Tickets to seed"),
        waiting: int = typer.Option(1_000, min=1, help="Conversations waiting for a person"),
        replies: int = typer.Option(300, min=1, help="Agent replies measured in each phase"),
        opens: int = typer.Option(50, min=1, help="Inbox opens measured"),
        split: bool = typer.Option(
            False, "--split", help="Start `frontdoor up --split` instead of one process"
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON"),
    ) -> None:
        """Inbox open time with many tickets and waiting conversations; an agent's reply to
        the widget, alone and beside `bench e2e`'s load. Exit 1 if a reply was lost."""
        try:
            report = measure(tickets, waiting, replies, opens, split)
        except (BenchError, RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(json.dumps(report, indent=2) if as_json else summary(report))
        if report["lost_replies"]:
            raise typer.Exit(1)
