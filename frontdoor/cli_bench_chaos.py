"""``frontdoor bench chaos``: the production shape on this machine, losing a NATS node, a service
instance of each service and a gateway while conversations run (``frontdoor.bench_chaos``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

#: The PostgreSQL server the bench makes its database on (its own, dropped afterwards).
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _summary(report: dict[str, Any]) -> str:
    lines = [
        f"{report['turns_sent']} turns sent, {report['turns_answered']} answered in "
        f"{report['elapsed_s']} s ({report['turns_per_s']} turns/s; p50 {report['p50_ms']} ms, "
        f"p99 {report['p99_ms']} ms; longest turn {report['longest_turn_s']} s, longest stall "
        f"{report['longest_stall_s']} s)",
        f"lost {report['lost']}, duplicated {report['duplicated']}, out of order "
        f"{report['out_of_order']}; replies {report['replies']}; tickets {report['tickets']}",
    ]
    for fault in report.get("faults", []):
        lines.append(
            f"fault: {fault['kind']} {fault['target']} at {fault['at_s']} s "
            f"(pids {fault['pids_before']} -> {fault['pids_after']}): "
            f"{fault['turns_in_flight']} turns in flight, recovered in {fault['recovery_s']} s"
        )
    lines.append(f"CPU ms per turn: {report['cpu_ms_per_turn']}")
    lines += [f"failure: {f}" for f in report["failures"]]
    lines.append("OK" if report["ok"] else "NOT OK")
    return "\n".join(lines)


def register(bench_app: typer.Typer) -> None:
    """Attach ``chaos`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("chaos")
    def bench_chaos(
        conversations: int = typer.Option(50, min=1, help="Concurrent conversations"),
        duration: float = typer.Option(120.0, min=5.0, help="Seconds of conversations"),
        quick: bool = typer.Option(
            False, "--quick", help="6 conversations for 40 s (the test suite's version)"
        ),
        faults: bool = typer.Option(True, "--faults/--no-faults", help="Kill parts while it runs"),
        single: bool = typer.Option(
            False, "--single", help="The same conversations against one `frontdoor up` instead"
        ),
        postgres_url: str = typer.Option(
            DEFAULT_POSTGRES,
            envvar="FRONTDOOR_BENCH_POSTGRES_URL",
            help="PostgreSQL to make the run's database on (else one instance of management "
            "and marketing, on SQLite)",
        ),
        no_postgres: bool = typer.Option(False, "--no-postgres", help="Do not use PostgreSQL"),
        log_dir: Path | None = typer.Option(
            None, "--log-dir", help="Keep every process's log and data here"
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    ) -> None:
        """Three NATS nodes, two gateways, two instances of each service; kill -9 a NATS node,
        an instance of each service and a gateway during 50 conversations over REST, WebSocket
        and Slack; every turn answered once and in order? Exit 1 if not."""
        from frontdoor.bench_chaos import ChaosOptions, run_chaos
        from frontdoor.eventloop import run

        options = ChaosOptions(
            conversations=6 if quick else conversations,
            duration=40.0 if quick else duration,
            faults=faults and not single,
            single=single,
            postgres_url=None if no_postgres else postgres_url,
            log_dir=log_dir.resolve() if log_dir else None,
            nats_down=3.0 if quick else 5.0,
        )
        report = run(run_chaos(options, _progress))
        typer.echo(json.dumps(report, indent=2) if as_json else _summary(report))
        if not report["ok"]:
            raise typer.Exit(1)
