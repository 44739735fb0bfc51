"""CLI of the NLU area: ``frontdoor data validate``, ``frontdoor train``, ``frontdoor nlu ...``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from skills.nlu.errors import NLUError, TrainingDataError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

data_app = typer.Typer(help="Rasa-format training data (nlu.yml, domain.yml, stories, rules).")
nlu_app = typer.Typer(help="NLU models: evaluate, publish, list, try.")


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(1)


@data_app.command("validate")
def validate(
    domain: Path = typer.Option(None, "--domain", "-d", help="domain.yml or domain/ folder"),
    data: list[Path] = typer.Option(None, "--data", help="training data folder(s)/file(s)"),
    config: Path = typer.Option(None, "--config", "-c", help="config.yml"),
    project: Path = typer.Option(Path("."), "--project", "-p", help="the Rasa project folder"),
    fail_on_warnings: bool = typer.Option(False, help="exit non-zero on warnings too"),
) -> None:
    """Check a Rasa project for mistakes, like `rasa data validate` (exit 1 on errors)."""
    from skills.nlu.rasa_data import load_project
    from skills.nlu.validate import validate_project

    try:
        loaded = load_project(project, domain=domain, data=data or None, config=config)
    except TrainingDataError as exc:
        _fail(exc)
    report = validate_project(loaded)
    console.print(
        f"Loaded [bold]{len(loaded.nlu.examples)}[/] examples of "
        f"[bold]{len(loaded.nlu.intents)}[/] intents, {len(loaded.stories)} stories, "
        f"{len(loaded.rules)} rules, domain with {len(loaded.domain.intents)} intents, "
        f"{len(loaded.domain.slots)} slots, {len(loaded.domain.forms)} forms, "
        f"{len(loaded.domain.responses)} responses."
    )
    for issue in report.issues:
        style = "bold red" if issue.level == "error" else "yellow"
        where = f" [dim]({issue.location})[/]" if issue.location else ""
        console.print(
            f"[{style}]{issue.level}[/] [dim]{issue.code}[/]: {issue.message}{where}",
            soft_wrap=True,
        )
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = "[bold red]invalid[/]" if n_err else "[bold green]valid[/]"
    console.print(f"{verdict}: {n_err} error(s), {n_warn} warning(s)")
    if n_err or (fail_on_warnings and n_warn):
        raise typer.Exit(1)


def _load_data(paths: list[Path]) -> Any:
    from skills.nlu.rasa_data import load_training_data

    return load_training_data(paths)


def _load_train_config(path: Path | None) -> dict[str, Any]:
    """``--config``: a YAML/JSON mapping of engine options; a Rasa config.yml is accepted.

    From a Rasa ``config.yml`` only a ``frontdoor:`` section is used (pipeline/policies are
    Rasa's own business).
    """
    if path is None:
        return {}
    from skills.nlu.rasa_data import load_config

    raw = load_config(path)
    if "frontdoor" in raw:
        section = raw["frontdoor"]
        if not isinstance(section, dict):
            raise TrainingDataError("`frontdoor:` must be a mapping of engine options", path)
        return section
    rasa_keys = {"recipe", "language", "pipeline", "policies", "assistant_id"}
    return {k: v for k, v in raw.items() if k not in rasa_keys}


def _print_evaluation(report: Any, title: str) -> None:
    console.print(
        f"[bold]{title}[/] ({report.method}"
        f"{f', {report.folds} folds' if report.folds else ''}, {report.examples} examples): "
        f"accuracy [bold]{report.accuracy:.3f}[/], macro-F1 [bold]{report.macro_f1:.3f}[/], "
        f"weighted-F1 {report.weighted_f1:.3f}"
    )
    table = Table(Column("intent", no_wrap=True), "precision", "recall", "F1", "support")
    for name, m in sorted(report.per_intent.items(), key=lambda kv: kv[1].f1):
        colour = "red" if m.f1 < 0.7 else "yellow" if m.f1 < 0.9 else "green"
        table.add_row(
            name,
            f"{m.precision:.3f}",
            f"{m.recall:.3f}",
            f"[{colour}]{m.f1:.3f}[/]",
            str(m.support),
        )
    console.print(table)
    if report.confusions:
        conf = Table("actual", "predicted as", "count", title="Top confusions")
        for pair in report.confusions:
            conf.add_row(pair.actual, pair.predicted, str(pair.count))
        console.print(conf)
    if report.entities is not None:
        e = report.entities
        console.print(
            f"entities (exact spans): precision {e.precision:.3f}, recall {e.recall:.3f}, "
            f"F1 {e.f1:.3f}, support {e.support}"
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    )


def _default_data_dir() -> Path:
    """``data/`` of a Rasa project in the current folder, else the shipped assistant's data."""
    if Path("data").is_dir():
        return Path("data")
    from skills.data import NLU_FILE

    console.print(f"No data/ folder here: training the shipped assistant ({NLU_FILE})")
    return NLU_FILE


def train(
    data: list[Path] = typer.Option(
        None,
        "--data",
        help="training data folder(s) or file(s) (default: data/, else the shipped assistant)",
    ),
    out: Path = typer.Option(Path("models"), "--out", "-o", help="models folder"),
    config: Path = typer.Option(None, "--config", "-c", help="engine options (YAML)"),
    test: Path = typer.Option(None, "--test", help="evaluate on this file instead of k-fold CV"),
    folds: int = typer.Option(5, "--folds", "-k", min=2, help="cross-validation folds"),
    no_eval: bool = typer.Option(False, "--no-eval", help="skip evaluation"),
    make_latest: bool = typer.Option(
        True, "--latest/--no-latest", help="point <out>/latest at the new model"
    ),
    engine: str = typer.Option("builtin", "--engine", help="engine to train", hidden=True),
) -> None:
    """Train the built-in NLU engine into a new versioned model under --out."""
    from skills.nlu.lifecycle.registry import DirectoryRegistry
    from skills.nlu.lifecycle.training import train_model

    try:
        training = _load_data(data or [_default_data_dir()])
        test_data = _load_data([test]) if test is not None else None
        options = _load_train_config(config)
        console.print(
            f"Training on [bold]{len(training.examples)}[/] examples, "
            f"{len(training.intents)} intents"
        )
        with _progress() as progress:
            task = progress.add_task("starting", total=1.0)

            def report(stage: str, fraction: float) -> None:
                progress.update(task, description=stage, completed=fraction)

            artifact = train_model(
                training,
                out,
                engine=engine,
                config=options,
                folds=folds,
                test_data=test_data,
                evaluate=not no_eval,
                progress=report,
            )
        if make_latest:
            asyncio.run(DirectoryRegistry(out).set_latest(artifact.version))
    except NLUError as exc:
        _fail(exc)
    meta = artifact.metadata
    console.print(
        f"[bold green]model {meta.version}[/] written to {artifact.path} "
        f"(trained in {meta.training_seconds:.2f}s, data sha256 {meta.data_sha256[:12]}…)"
        + (" and set as latest" if make_latest else "")
    )
    evaluation = artifact.evaluation()
    if evaluation is not None:
        _print_evaluation(evaluation, "Evaluation")


def _resolve_model(model: Path | None) -> Path:
    from skills.nlu.lifecycle.registry import LATEST

    path = model or Path("models")
    if (path / LATEST).is_file():
        path = path / (path / LATEST).read_text(encoding="utf-8").strip()
    return path


@nlu_app.command("test")
def nlu_test(
    model: Path = typer.Option(None, "--model", "-m", help="model dir or models folder"),
    test: Path = typer.Option(None, "--test", help="test file (nlu.yml or CSV)"),
    data: list[Path] = typer.Option(None, "--data", help="data for k-fold CV (default: data/)"),
    folds: int = typer.Option(5, "--folds", "-k", min=2),
    json_out: Path = typer.Option(None, "--json", help="also write the report as JSON"),
) -> None:
    """Evaluate a model on a test file, or by k-fold cross-validation of its engine/config."""
    from skills.nlu.lifecycle.training import evaluate_model

    try:
        path = _resolve_model(model)
        if test is not None:
            report = evaluate_model(path, test_data=_load_data([test]))
        else:
            training = _load_data(data or [_default_data_dir()])
            with _progress() as progress:
                task = progress.add_task("cross-validation", total=folds)

                def on_fold(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                report = evaluate_model(path, train_data=training, folds=folds, on_fold=on_fold)
    except NLUError as exc:
        _fail(exc)
    _print_evaluation(report, f"Model {path.name}")
    if json_out is not None:
        json_out.write_text(report.model_dump_json(indent=2), encoding="utf-8")


async def _connect(nats_url: str) -> Any:
    from events.bus import Bus

    # The gateway creates the streams; publishing a model needs only the object store and KV.
    return await Bus.connect(nats_url, ensure=False)


@nlu_app.command("publish")
def nlu_publish(
    model: Path = typer.Argument(..., help="model artifact directory"),
    nats_url: str = typer.Option(None, "--nats-url", envvar="NATS_URL", help="NATS to publish to"),
    models_dir: Path = typer.Option(None, "--models-dir", help="publish to a models folder"),
    data_dir: Path = typer.Option(
        Path(".frontdoor"),
        "--data-dir",
        envvar="FRONTDOOR_DATA_DIR",
        help="Without a NATS URL: the data dir of a running `frontdoor up` (its NATS, as `cli`)",
    ),
) -> None:
    """Publish a model and make it current: to NATS (object store + KV) or a models folder."""
    from frontdoor.local_nats import attach_url
    from skills.nlu.lifecycle.registry import DirectoryRegistry, NatsRegistry

    async def run() -> str:
        if models_dir is not None:
            return await DirectoryRegistry(models_dir).publish(model)
        url = nats_url or attach_url(data_dir)
        if not url:
            raise NLUError(
                "give --nats-url (or NATS_URL) or --models-dir, or run it next to a running "
                f"`frontdoor up` (none runs with data dir {data_dir})"
            )
        bus = await _connect(url)
        try:
            return await NatsRegistry(bus, Path(".frontdoor/model-cache")).publish(model)
        finally:
            await bus.close()

    try:
        version = asyncio.run(run())
    except NLUError as exc:
        _fail(exc)
    console.print(f"[bold green]published[/] {version} (now latest)")


@nlu_app.command("models")
def nlu_models(
    models_dir: Path = typer.Option(Path("models"), "--models-dir"),
) -> None:
    """List the models of a models folder with their evaluation."""
    from skills.nlu.lifecycle.artifacts import read_artifact
    from skills.nlu.lifecycle.registry import DirectoryRegistry

    registry = DirectoryRegistry(models_dir)
    latest = asyncio.run(registry.latest())
    table = Table(
        Column("version", no_wrap=True),
        "engine",
        "examples",
        "intents",
        "accuracy",
        "macro-F1",
        "latest",
    )
    for version in asyncio.run(registry.versions()):
        artifact = read_artifact(models_dir / version)
        ev = artifact.evaluation()
        table.add_row(
            version,
            artifact.metadata.engine,
            str(artifact.metadata.examples),
            str(len(artifact.metadata.intents)),
            f"{ev.accuracy:.3f}" if ev else "-",
            f"{ev.macro_f1:.3f}" if ev else "-",
            "*" if version == latest else "",
        )
    console.print(table)


@nlu_app.command("parse")
def nlu_parse(
    text: str = typer.Argument(...),
    model: Path = typer.Option(None, "--model", "-m", help="model dir or models folder"),
) -> None:
    """Parse one message with a local model and print the result as JSON."""
    from skills.nlu.lifecycle.artifacts import load_engine

    try:
        engine = load_engine(_resolve_model(model))
    except NLUError as exc:
        _fail(exc)
    console.print_json(json.dumps(engine.parse_sync(text).model_dump(mode="json")))


def register(app: typer.Typer) -> None:
    """Attach ``data``, ``train`` and ``nlu`` to the ``frontdoor`` app."""
    app.add_typer(data_app, name="data")
    app.add_typer(nlu_app, name="nlu")
    app.command("train")(train)
