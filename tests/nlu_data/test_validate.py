"""``frontdoor data validate``: findings like ``rasa data validate``, exit code on errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frontdoor.cli import app, register_commands
from skills.nlu.rasa_data import load_project
from skills.nlu.validate import validate_project
from tests.nlu_data.conftest import FIXTURE_PROJECT

register_commands()
runner = CliRunner()


def _codes(project_dir: Path) -> dict[str, list[str]]:
    report = validate_project(load_project(project_dir))
    out: dict[str, list[str]] = {}
    for issue in report.issues:
        out.setdefault(issue.code, []).append(issue.level)
    return out


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_fixture_project_is_clean() -> None:
    report = validate_project(load_project(FIXTURE_PROJECT))
    assert report.issues == []
    assert report.ok


def test_data_problems_are_found(project_dir: Path) -> None:
    _append(
        project_dir / "data" / "nlu.yml",
        "\n  - intent: order_pizza\n    examples: |\n      - order me a pizza\n"
        "      - a [margherita](pizza) please\n      - a pizza please\n      - a pizza please\n"
        '      - fly to [Oslo]{"entity": "city", "role": "layover"}\n'
        "  - intent: lonely\n    examples: |\n      - just me\n",
    )
    codes = _codes(project_dir)
    assert codes["intent_not_in_domain"] == ["error", "error"]  # order_pizza, lonely
    assert codes["duplicate_example"] == ["error"]  # "order me a pizza" is also out_of_scope
    assert codes["repeated_example"] == ["warning"]
    assert codes["entity_not_in_domain"] == ["error"]
    assert codes["entity_role_not_in_domain"] == ["warning"]
    assert codes["few_examples"] == ["warning"]  # lonely


def test_domain_problems_are_found(project_dir: Path) -> None:
    domain = project_dir / "domain.yml"
    text = domain.read_text()
    text = text.replace("      - travel_date\n", "      - travel_date\n      - seat\n", 1)
    text = text.replace("  - product\n", "  - product\n  - colour\n  - unused_thing\n", 1)
    text = text.replace("  - greet\n", "  - greet\n  - never_trained\n", 1)
    text = text.replace("        entity: ticket_id\n", "        entity: ticket_number\n", 1)
    text = text.replace(
        '    - text: "Bye!"\n',
        '    - text: "Bye {name}!"\n      buttons:\n        - title: Again\n'
        "          payload: /restart_me\n",
        1,
    )
    domain.write_text(text)
    codes = _codes(project_dir)
    assert codes["form_slot_not_in_domain"] == ["error"]  # seat
    assert codes["unused_entity"] == ["warning", "warning"]  # colour, unused_thing
    assert codes["intent_without_examples"] == ["warning"]
    assert codes["intent_not_in_stories"] == ["warning"]
    assert codes["slot_mapping_entity_not_in_domain"] == ["error"]
    assert codes["response_unknown_slot"] == ["warning"]
    assert codes["button_unknown_intent"] == ["warning"]


def test_story_problems_are_found(project_dir: Path) -> None:
    _append(
        project_dir / "data" / "rules.yml",
        "\n  - rule: broken\n    steps:\n      - intent: fly_away\n"
        "        entities:\n          - spaceship: x\n"
        "      - action: utter_nothing\n      - action: action_custom\n"
        "      - active_loop: missing_form\n      - slot_was_set:\n          - fuel: full\n",
    )
    codes = _codes(project_dir)
    for code in (
        "story_intent_not_in_domain",
        "response_not_in_domain",
        "action_not_in_domain",
        "story_entity_not_in_domain",
        "story_form_not_in_domain",
        "story_slot_not_in_domain",
    ):
        assert codes[code] == ["error"], code


def test_unused_response_is_a_warning(project_dir: Path) -> None:
    text = (project_dir / "domain.yml").read_text()
    (project_dir / "domain.yml").write_text(
        text.replace("responses:\n", 'responses:\n  utter_unused:\n    - text: "never"\n', 1)
    )
    assert _codes(project_dir) == {"unused_response": ["warning"]}


@pytest.fixture
def in_dir():
    old = Path.cwd()

    def go(path: Path) -> None:
        os.chdir(path)

    yield go
    os.chdir(old)


def test_cli_exit_codes(project_dir: Path, in_dir) -> None:
    in_dir(project_dir)
    result = runner.invoke(app, ["data", "validate"])
    assert result.exit_code == 0, result.output
    assert "valid: 0 error(s), 0 warning(s)" in result.output

    text = (project_dir / "domain.yml").read_text()
    (project_dir / "domain.yml").write_text(
        text.replace("responses:\n", 'responses:\n  utter_unused:\n    - text: "never"\n', 1)
    )
    result = runner.invoke(app, ["data", "validate"])
    assert result.exit_code == 0, result.output  # warnings only
    assert "unused_response" in result.output
    result = runner.invoke(app, ["data", "validate", "--fail-on-warnings"])
    assert result.exit_code == 1

    _append(project_dir / "data" / "nlu.yml", "\n  - intent: ghost\n    examples: |\n      - boo\n")
    result = runner.invoke(app, ["data", "validate"])
    assert result.exit_code == 1
    assert "intent_not_in_domain" in result.output and "invalid" in result.output


def test_cli_explicit_paths_and_load_error(project_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "validate",
            "--domain",
            str(project_dir / "domain.yml"),
            "--data",
            str(project_dir / "data"),
            "--config",
            str(project_dir / "config.yml"),
        ],
    )
    assert result.exit_code == 0, result.output
    (project_dir / "data" / "nlu.yml").write_text("nlu:\n- intent: x\n  examples: |\n    - [a\n")
    result = runner.invoke(app, ["data", "validate", "--project", str(project_dir)])
    assert result.exit_code == 1
    assert "nlu.yml:4" in result.output and "unbalanced" in result.output
