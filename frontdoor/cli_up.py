"""``frontdoor up``, ``frontdoor serve <component>`` and ``frontdoor doctor``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console

from frontdoor.settings import FrontdoorSettings, redact_url


def _settings(**overrides: Any) -> FrontdoorSettings:
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return FrontdoorSettings(**given)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _run(coro: Any) -> None:
    from events.errors import StartupRefused
    from frontdoor.eventloop import run
    from frontdoor.wiring import fail

    try:
        run(coro)  # uvloop when installed
    except StartupRefused as exc:
        fail(str(exc))
    except ValueError as exc:  # e.g. FRONTDOOR_SERVICES names an unknown service
        fail(str(exc))


def register(app: typer.Typer) -> None:
    """Attach ``up``, ``serve`` and ``doctor``."""

    @app.command("up")
    def up(
        host: str = typer.Option(None, "--host", help="Listen address [FRONTDOOR_HOST, 127.0.0.1]"),
        port: int = typer.Option(None, "--port", help="HTTP port [FRONTDOOR_PORT, 8000]"),
        data_dir: Path = typer.Option(
            None, "--data-dir", help="Local state [FRONTDOOR_DATA_DIR, ./.frontdoor]"
        ),
        split: bool = typer.Option(
            False,
            "--split",
            envvar="FRONTDOOR_UP_SPLIT",
            help="Run each service in its own child process (uses every CPU core; more memory) "
            "[FRONTDOOR_UP_SPLIT]",
        ),
    ) -> None:
        """Run everything locally: NATS (embedded unless NATS_URL), every service, the gateway."""
        from frontdoor.logs import configure_logging
        from frontdoor.wiring import run_up

        settings = _settings(host=host, port=port, data_dir=data_dir)
        configure_logging(settings.log_format, settings.log_level)
        _run(run_up(settings, split=split))

    @app.command("serve")
    def serve(
        component: str = typer.Argument(..., help="'gateway' or a service name"),
        host: str = typer.Option(None, "--host", help="Gateway listen address"),
        port: int = typer.Option(None, "--port", help="Gateway HTTP port"),
    ) -> None:
        """Run one component alone against NATS_URL (never starts an embedded nats-server)."""
        from frontdoor.logs import configure_logging
        from frontdoor.wiring import run_serve

        settings = _settings(host=host, port=port)
        configure_logging(settings.log_format, settings.log_level)
        _run(run_serve(settings, component))

    @app.command("doctor")
    def doctor(
        nats_url: str = typer.Option(None, "--nats-url", help="NATS to check [NATS_URL]"),
        data_dir: Path = typer.Option(None, "--data-dir", help="Where `frontdoor up` runs"),
    ) -> None:
        """Check NATS, JetStream, the streams and which services answer; exit 1 on problems."""
        from frontdoor.doctor import run_doctor

        console = Console()
        url = attach_url(nats_url, data_dir)
        report = asyncio.run(run_doctor(url, shown_url=redact_url(url)))
        for check in report.checks:
            mark = "[green]ok  [/green]" if check.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {check.name}: {check.detail}")
        if not report.ok:
            console.print("[red]problems found[/red]")
            raise typer.Exit(1)
        console.print("[green]all good[/green]")


def attach_url(nats_url: str | None, data_dir: Path | None) -> str:
    """The NATS a command works on: ``--nats-url``/``NATS_URL``, else the embedded server of a
    running ``frontdoor up`` (as the ``cli`` NATS user, with its credential from the data dir);
    exits 2 with the reason otherwise."""
    from frontdoor.local_nats import NATS_URL_FILE
    from frontdoor.local_nats import attach_url as local_url

    settings = _settings(nats_url=nats_url, data_dir=data_dir)
    url = settings.nats()
    url_file = settings.data_dir / NATS_URL_FILE
    if url is None:
        url = local_url(settings.data_dir)
        if url is not None:
            Console(stderr=True).print(
                f"using the embedded nats-server of `frontdoor up` ({url_file})"
            )
    if url is None:
        Console(stderr=True).print(
            "[red]FAIL[/red] nats: NATS_URL is not set, --nats-url not given, and no "
            f"`frontdoor up` runs with data dir {settings.data_dir} (no {url_file})."
        )
        raise typer.Exit(2)
    return url
