"""``frontdoor bench nlu``: train an NLU engine and measure it on a test file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from skills.nlu.bench import BenchResult, load_data, run_bench
from skills.nlu.errors import NLUError

TARGETS = {
    "accuracy": (0.94, ">="),
    "latency_p50_ms": (5.0, "<="),
    "latency_p99_ms": (20.0, "<="),
    "throughput_per_s": (1000.0, ">="),
    "train_seconds": (300.0, "<="),
}


def _table(result: BenchResult) -> Table:
    table = Table(title=f"frontdoor bench nlu ({result.engine})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target (Banking77)", justify="right")
    rows = [
        ("accuracy", f"{result.accuracy:.2%}"),
        ("macro F1", f"{result.macro_f1:.2%}"),
        ("training", f"{result.train_seconds:.1f} s"),
        ("latency p50 (sequential)", f"{result.latency_p50_ms:.2f} ms"),
        ("latency p99 (sequential)", f"{result.latency_p99_ms:.2f} ms"),
        (f"throughput ({result.concurrency} callers)", f"{result.throughput_per_s:,.0f} /s"),
        ("fallback rate", f"{result.fallback_rate:.2%}"),
    ]
    keys = [
        "accuracy",
        None,
        "train_seconds",
        "latency_p50_ms",
        "latency_p99_ms",
        "throughput_per_s",
        None,
    ]
    for (label, value), key in zip(rows, keys, strict=True):
        target = ""
        if key:
            bound, op = TARGETS[key]
            got = getattr(result, key)
            ok = got >= bound if op == ">=" else got <= bound
            target = f"{'ok' if ok else 'missed'} {op} {bound:g}"
        table.add_row(label, value, target)
    table.caption = f"{result.train_examples} training / {result.test_examples} test examples"
    return table


def register(bench_app: typer.Typer) -> None:
    """Attach ``nlu`` to the ``frontdoor bench`` sub-app."""

    @bench_app.command("nlu")
    def bench_nlu(
        train: Path = typer.Option(..., "--train", exists=True, dir_okay=False, help="Train file."),
        test: Path = typer.Option(..., "--test", exists=True, dir_okay=False, help="Test file."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        engine: str = typer.Option("builtin", "--engine", help="Engine to train."),
        embeddings: str = typer.Option(
            "auto", "--embeddings", help="auto|on|off: MiniLM embeddings (builtin engine)."
        ),
        concurrency: int = typer.Option(50, "--concurrency", min=1, help="Concurrent callers."),
    ) -> None:
        """Accuracy, macro-F1, training time, parse latency and throughput of an NLU engine.

        Files are Rasa YAML NLU files or CSV with a header (first column text, second intent).
        """
        config = None
        if engine == "builtin":
            from skills.nlu.builtin import BuiltinConfig

            choice = {"auto": None, "on": True, "off": False}.get(embeddings.lower(), "bad")
            if choice == "bad":
                raise typer.BadParameter("use auto, on or off", param_hint="--embeddings")
            config = BuiltinConfig(use_embeddings=choice)  # type: ignore[arg-type]
        console = Console(stderr=True)
        try:
            train_data, test_data = load_data(train), load_data(test)
            if as_json:
                result = run_bench(train_data, test_data, engine, config, concurrency)
            else:
                with Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TimeElapsedColumn(),
                    console=console,
                ) as bar:
                    task = bar.add_task("training", total=1.0)

                    def report(stage: str, fraction: float) -> None:
                        bar.update(task, description=stage, completed=fraction)

                    result = run_bench(train_data, test_data, engine, config, concurrency, report)
        except NLUError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(result.model_dump_json())
        else:
            Console().print(_table(result))
