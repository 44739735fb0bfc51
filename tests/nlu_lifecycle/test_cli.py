"""``frontdoor train`` / ``frontdoor nlu ...`` end to end on the fixture Rasa project."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from frontdoor.cli import app, register_commands
from tests.nlu_data.conftest import FIXTURE_PROJECT

register_commands()
runner = CliRunner()
DATA = str(FIXTURE_PROJECT / "data")


def test_train_then_test_list_parse_publish(tmp_path: Path) -> None:
    out = tmp_path / "models"
    result = runner.invoke(
        app, ["train", "--engine", "tiny", "--data", DATA, "--out", str(out), "--folds", "3"]
    )
    assert result.exit_code == 0, result.output
    version = (out / "latest").read_text().strip()
    assert f"model {version}" in result.output
    assert "accuracy" in result.output and "macro-F1" in result.output
    meta = json.loads((out / version / "metadata.json").read_text())
    assert meta["examples"] == 37 and meta["engine"] == "tiny"
    evaluation = json.loads((out / version / "evaluation.json").read_text())
    assert evaluation["folds"] == 3 and evaluation["examples"] == 37

    test_csv = tmp_path / "test.csv"
    test_csv.write_text("text,intent\nhello there,greet\nbye,goodbye\nopen a ticket,open_ticket\n")
    report_file = tmp_path / "report.json"
    result = runner.invoke(
        app,
        ["nlu", "test", "--model", str(out), "--test", str(test_csv), "--json", str(report_file)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_file.read_text())
    assert report["method"] == "test-set" and report["examples"] == 3
    assert f"Model {version}" in result.output

    result = runner.invoke(
        app, ["nlu", "test", "--model", str(out / version), "--data", DATA, "--folds", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "cross-validation, 2 folds, 37 examples" in result.output

    result = runner.invoke(app, ["nlu", "models", "--models-dir", str(out)])
    assert result.exit_code == 0 and version in result.output

    result = runner.invoke(app, ["nlu", "parse", "hello there", "--model", str(out)])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.output)
    assert parsed["intent"]["name"] == "greet" and parsed["model_version"] == version

    other = tmp_path / "other-models"
    result = runner.invoke(app, ["nlu", "publish", str(out / version), "--models-dir", str(other)])
    assert result.exit_code == 0, result.output
    assert (other / "latest").read_text().strip() == version


def test_train_with_test_file_and_bad_data(tmp_path: Path) -> None:
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("text,intent\nhello,greet\nnope,deny\n")
    result = runner.invoke(
        app,
        [
            "train",
            "--engine",
            "tiny",
            "--data",
            DATA,
            "--out",
            str(tmp_path / "m"),
            "--test",
            str(test_csv),
            "--no-latest",
        ],
    )
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "m" / "latest").exists()
    assert "test-set" in result.output

    bad = tmp_path / "bad.yml"
    bad.write_text("nlu:\n- intent: greet\n  examples: |\n    - [oops\n")
    result = runner.invoke(app, ["train", "--engine", "tiny", "--data", str(bad)])
    assert result.exit_code == 1
    assert "bad.yml:4" in result.output and "unbalanced" in result.output

    result = runner.invoke(
        app, ["train", "--engine", "nope", "--data", DATA, "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and "unknown NLU engine 'nope'" in result.output
