"""``frontdoor nats``: the NATS permissions of ``events/compartments.py`` as server config, and
the embedded server's credentials.

- ``frontdoor nats config > deploy/nats/nats-server.conf`` regenerates the deploy config (a test
  fails while the checked-in file differs).
"""

from __future__ import annotations

import typer

nats_app = typer.Typer(help="NATS permissions (compartments) and credentials (docs/spine.md).")


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
