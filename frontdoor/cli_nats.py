"""``frontdoor nats config``: the NATS server configuration of a deployment, from
``events.compartments`` (the one source of truth of every component's permissions)."""

from __future__ import annotations

from pathlib import Path

import typer

nats_app = typer.Typer(help="NATS: the deployment's server configuration (users, permissions).")


@nats_app.command("config")
def nats_config(
    output: Path = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output"
    ),
) -> None:
    """Print deploy/nats/nats-server.conf: one user per component, least privilege, passwords
    from the environment (FD_NATS_<USER>_PASSWORD)."""
    from events.compartments import render_deploy_config

    text = render_deploy_config()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}")


def register(app: typer.Typer) -> None:
    """Attach ``nats`` to the ``frontdoor`` app."""
    app.add_typer(nats_app, name="nats")
