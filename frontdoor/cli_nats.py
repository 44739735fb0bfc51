"""``frontdoor nats``: the NATS permissions of ``events/compartments.py`` as server config, and
the embedded server's credentials.

- ``frontdoor nats config > deploy/nats/nats-server.conf`` regenerates the deploy config (a test
  fails while the checked-in file differs).
- ``frontdoor nats rotate <component> [--data-dir DIR]`` gives a component of ``frontdoor up`` a
  new password (from its next start).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

nats_app = typer.Typer(help="NATS permissions (compartments) and credentials (docs/spine.md).")

DATA_DIR = typer.Option(
    Path(".frontdoor"), "--data-dir", envvar="FRONTDOOR_DATA_DIR", help="Frontdoor's data dir"
)


def register(app: typer.Typer) -> None:
    """Attach ``frontdoor nats ...``."""
    app.add_typer(nats_app, name="nats")


def deploy_config() -> str:
    """The deploy NATS config for every registered service."""
    from backend_services.registry import service_names
    from events.compartments import render_deploy_config

    return render_deploy_config(service_names())


@nats_app.command("config")
def config() -> None:
    """Print the NATS server config (deploy/nats/nats-server.conf) rendered from the
    compartments: `frontdoor nats config > deploy/nats/nats-server.conf`."""
    typer.echo(deploy_config(), nl=False)


@nats_app.command("rotate")
def rotate(
    component: str = typer.Argument(..., help="gateway, a service name or cli"),
    data_dir: Path = DATA_DIR,
) -> None:
    """Give a component of `frontdoor up` a new NATS password (used from its next start)."""
    from backend_services.registry import service_names
    from events.compartments import components
    from events.local_auth import LocalCredentials
    from frontdoor.wiring import NATS_PID_FILE, NATS_SUBDIR

    known = components(service_names())
    if component not in known:
        typer.echo(f"error: unknown component {component!r}; one of {', '.join(known)}", err=True)
        raise typer.Exit(2)
    pid_file = data_dir / NATS_PID_FILE
    if pid_file.is_file() and _alive(pid_file.read_text().strip()):
        typer.echo(
            f"error: `frontdoor up` is running with {data_dir}: stop it first (its server "
            "keeps the old password until it restarts)",
            err=True,
        )
        raise typer.Exit(2)
    credentials = LocalCredentials.ensure(data_dir / NATS_SUBDIR, known)
    credentials.rotate(component)
    typer.echo(f"new NATS password for {component}; `frontdoor up` uses it from its next start")


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
