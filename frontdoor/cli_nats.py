"""``frontdoor nats config`` and ``frontdoor nats helm-values``: the NATS server configuration
of a deployment, from ``events.compartments`` (the one source of truth of every component's
permissions)."""

from __future__ import annotations

from pathlib import Path

import typer

nats_app = typer.Typer(help="NATS: the deployment's server configuration (users, permissions).")


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}")


@nats_app.command("config")
def nats_config(
    output: Path = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output"
    ),
    cluster: str = typer.Option(
        None,
        "--cluster",
        help="Render one node of a JetStream cluster of this name (deploy/nats/nats-cluster.conf)",
    ),
    nodes: int = typer.Option(3, "--nodes", help="Nodes of the cluster (with --cluster), 3+"),
) -> None:
    """Print deploy/nats/nats-server.conf: one user per component, least privilege, passwords
    from the environment (FD_NATS_<USER>_PASSWORD). With --cluster, the configuration every node
    of a cluster runs (deploy/nats/nats-cluster.conf): the same users, authenticated routes, the
    node's name and routes from the environment."""
    from events.compartments import render_cluster_config, render_deploy_config

    if cluster is None:
        text = render_deploy_config()
    else:
        try:
            text = render_cluster_config(cluster, nodes)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    _emit(text, output)


@nats_app.command("helm-values")
def nats_helm_values(
    output: Path = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output"
    ),
) -> None:
    """Print deploy/k8s/helm/nats-values.yaml: values of the official NATS Helm chart for a
    three-node JetStream cluster with Frontdoor's users and permissions, passwords from the
    Secret frontdoor-nats-server."""
    from frontdoor.nats_deploy import render_helm_values

    _emit(render_helm_values(), output)


def register(app: typer.Typer) -> None:
    """Attach ``nats`` to the ``frontdoor`` app."""
    app.add_typer(nats_app, name="nats")
