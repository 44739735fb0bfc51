"""The ``frontdoor`` command line.

Each area registers its own typer sub-app or command in ``register_commands`` below, keeping
this module a thin index.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="frontdoor",
    help=(
        "Frontdoor: a conversational ops front door. Chat in Slack or the web widget; bots "
        "route intents over NATS JetStream to backend services.\n\n"
        "Start everything locally with `frontdoor up`."
    ),
    no_args_is_help=True,
    add_completion=False,
)


bench_app = typer.Typer(
    help="Benchmarks: measure the bus, NLU and end-to-end turns on this machine."
)
app.add_typer(bench_app, name="bench")


def register_commands() -> None:
    """Attach every area's commands to ``app`` (imported lazily to keep start-up fast)."""
    # Each area adds one import+call here: ``cli_x.register(app)``. Benchmarks attach their
    # command to ``bench_app`` (``frontdoor bench <name>``).
    from frontdoor import cli_nlu

    cli_nlu.register(app)
    from frontdoor import cli_bench_bus

    cli_bench_bus.register(bench_app)
    from frontdoor import cli_bench_nlu

    cli_bench_nlu.register(bench_app)
    from frontdoor import cli_bench_analysis

    cli_bench_analysis.register(bench_app)
    from frontdoor import cli_bench_claims

    cli_bench_claims.register(bench_app)
    from frontdoor import cli_bench_limits

    cli_bench_limits.register(bench_app)
    from frontdoor import cli_up

    cli_up.register(app)
    from frontdoor import cli_users

    cli_users.register(app)
    from frontdoor import cli_keys

    cli_keys.register(app)
    from frontdoor import cli_dead

    cli_dead.register(app)
    from frontdoor import cli_privacy

    cli_privacy.register(app)
    from frontdoor import bench_e2e, cli_test_conversations

    cli_test_conversations.register(app)
    bench_e2e.register(bench_app)
    from frontdoor import cli_bench_management

    cli_bench_management.register(bench_app)
    from frontdoor import cli_bench_chaos

    cli_bench_chaos.register(bench_app)
    from frontdoor import cli_bench_workspace

    cli_bench_workspace.register(bench_app)
    from frontdoor import cli_nats

    cli_nats.register(app)


def main() -> None:
    """Entry point of the ``frontdoor`` console script."""
    register_commands()
    app()


if __name__ == "__main__":
    main()
