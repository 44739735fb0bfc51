"""Loading a real Rasa 3.x project as it is: nlu, domain, stories, rules, config, CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from skills.nlu.rasa_data import (
    TrainingDataError,
    load_csv,
    load_domain,
    load_nlu_file,
    load_project,
    load_training_data,
)
from tests.nlu_data.conftest import FIXTURE_PROJECT


def test_nlu_file_examples_entities_synonyms_regexes_lookups() -> None:
    data = load_nlu_file(FIXTURE_PROJECT / "data" / "nlu.yml")
    assert data.intents == sorted(
        [
            "affirm",
            "book_flight",
            "chitchat/ask_name",
            "check_ticket_status",
            "deny",
            "goodbye",
            "greet",
            "open_ticket",
            "out_of_scope",
        ]
    )
    assert len(data.examples) == 37
    for example in data.examples:
        assert "[" not in example.text and "]" not in example.text
        for span in example.entities:
            assert 0 <= span.start < span.end <= len(example.text)
    by_text = {e.text: e for e in data.examples}
    nyc = by_text["I want to fly to NYC tomorrow"]
    assert [(s.entity, nyc.text[s.start : s.end], s.value, s.role) for s in nyc.entities] == [
        ("city", "NYC", "New York", "destination"),
        ("date", "tomorrow", "tomorrow", None),
    ]
    urgent = by_text["my laptop is broken, this is urgent"]
    assert [(s.entity, s.value) for s in urgent.entities] == [
        ("product", "laptop"),
        ("priority", "high"),
    ]
    # Rasa 3 list-of-dicts examples, including a `text: |` block.
    assert "what is the meaning of life" in by_text
    assert data.synonyms == {
        "nyc": "New York",
        "sf": "San Francisco",
        "urgent": "high",
        "low priority": "low",
        "asap": "high",
        "critical": "high",
    }
    assert [(r.name, r.patterns) for r in data.regexes] == [("ticket_id", (r"T-\d{1,6}",))]
    assert data.lookups == {"product": ["laptop", "printer", "vpn", "phone"]}


def test_domain_intents_entities_slots_forms_responses() -> None:
    domain = load_domain(FIXTURE_PROJECT / "domain.yml")
    assert domain.version == "3.1"
    assert "chitchat" in domain.intent_names
    assert domain.intent("book_flight").use_entities == ["city", "date"]
    assert domain.intent("out_of_scope").ignore_entities == ["city"]
    assert domain.entity("city").roles == ["departure", "destination"]
    assert domain.slots["priority"].type == "categorical"
    assert domain.slots["priority"].values == ["low", "normal", "high"]
    mapping = domain.slots["departure_city"].mappings[0]
    assert (mapping.type, mapping.entity, mapping.role) == ("from_entity", "city", "departure")
    assert domain.slots["confirmed"].mappings[1].value is False
    assert domain.slots["issue_description"].mappings[0].conditions[0]["active_loop"] == (
        "ticket_form"
    )
    assert domain.forms["flight_form"].required_slots == [
        "departure_city",
        "destination_city",
        "travel_date",
    ]
    assert domain.forms["ticket_form"].ignored_intents == ["chitchat"]
    greet = domain.responses["utter_greet"]
    assert len(greet) == 2
    assert [b.payload for b in greet[0].buttons][2] == '/check_ticket_status{"ticket_id": "T-1"}'
    assert domain.responses["utter_out_of_scope"][1].channel == "slack"
    assert domain.actions == ["action_check_ticket_status", "validate_ticket_form"]
    assert domain.session_config.session_expiration_time == 60


def test_project_classifies_every_data_file_by_its_keys() -> None:
    project = load_project(FIXTURE_PROJECT)
    assert {p.name for p in project.data_files} == {
        "nlu.yml",
        "stories.yml",
        "rules.yml",
        "responses.yml",
    }
    assert [s.name for s in project.stories] == ["book a flight", "open a ticket and confirm"]
    assert len(project.rules) == 5
    story = project.stories[1]
    assert story.intents == ["open_ticket", "affirm", "deny"]  # `or:` alternatives included
    assert story.slots == ["product"]
    assert project.rules[-1].condition == [{"active_loop": "ticket_form"}]
    # Retrieval-intent responses living under data/ are merged into the domain.
    assert "utter_chitchat/ask_name" in project.domain.responses
    assert project.config is not None and project.config["language"] == "en"
    origin = project.example_origins[0]
    assert origin.path.endswith("nlu.yml") and origin.line == 6


def test_domain_folder_is_merged(tmp_path: Path) -> None:
    folder = tmp_path / "domain"
    folder.mkdir()
    (folder / "a.yml").write_text("intents: [greet]\nresponses:\n  utter_hi:\n  - text: hi\n")
    (folder / "b.yml").write_text("intents: [greet, bye]\nentities: [city]\n")
    domain = load_domain(folder)
    assert domain.intent_names == ["greet", "bye"]
    assert domain.entity_names == ["city"]
    assert domain.duplicates == ["intent 'greet'"]


def test_csv_with_header_and_annotations(tmp_path: Path) -> None:
    csv_file = tmp_path / "data.csv"
    csv_file.write_text(
        'text,intent\nhello,greet\n"book a flight to [Rome](city), please",book_flight\n\n'
    )
    data = load_csv(csv_file)
    assert [(e.text, e.intent) for e in data.examples] == [
        ("hello", "greet"),
        ("book a flight to Rome, please", "book_flight"),
    ]
    assert data.examples[1].entities[0].start == 17


def test_training_data_from_folders_and_files(tmp_path: Path) -> None:
    csv_file = tmp_path / "extra.csv"
    csv_file.write_text("intent,text,source\ngreet,yo,chat\n")
    data = load_training_data([FIXTURE_PROJECT / "data", csv_file])
    assert len(data.examples) == 38
    assert data.examples[-1].text == "yo"


# --- errors name the file, the line and what is wrong -------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nlu.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n   - oops: [\n", 5, "invalid YAML"),
        (
            "nlu:\n- intent: greet\n  examples: |\n    - hi\n    - to [Rome](city\n",
            5,
            "unbalanced '('",
        ),
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n- intent: bye\n", 5, "no `examples`"),
        ("nlu:\n- intent: greet\n  examples: |\n\n", 2, "has no examples"),
        ("nlu:\n- intent: greet\n  examples: 42\n", 3, "`examples` must be"),
        ("nlu:\n- intent: greet\n  examples: |\n    hi\n", 4, "must be a list item"),
        ("nlu:\n- greet\n", 2, "must be a mapping"),
        ("nlu:\n- intent: a\n  regex: b\n  examples: |\n    - x\n", 2, "exactly one"),
        ("nlu:\n- regex: r\n  examples: |\n    - '[a-'\n", 4, "invalid pattern"),
        ("nlu: {}\n", 1, "must be a list"),
        ("nlu:\n- intent: greet\n  intent: bye\n", 3, "duplicate key"),
        ("version: '3.1'\n", 1, "not an NLU file"),
    ],
)
def test_nlu_errors(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(TrainingDataError) as caught:
        load_nlu_file(path)
    err = caught.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert fragment in str(err)
    assert str(err).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("intents: greet\n", 1, "`intents` must be a list"),
        ("slots:\n  name: text\n", 2, "must be a mapping"),
        ("slots:\n  name:\n    type: colour\n", 3, "unknown type 'colour'"),
        ("slots:\n  level:\n    type: categorical\n", 3, "lists no `values`"),
        ("slots:\n  name:\n    mappings: []\n", 3, "no `type`"),
        ("forms:\n  f:\n    required_slots: a\n", 3, "must be a list"),
        ("responses:\n  utter_x:\n    - hello\n", 3, "variation must be a mapping"),
        ("responses:\n  utter_x:\n    - channel: web\n", 3, "needs one of"),
        ("responses:\n  utter_x:\n  - text: hi\n    buttons:\n    - payload: /a\n", 3, "title"),
        ("session_config:\n  session_expiration_time: soon\n", 2, "session_config"),
    ],
)
def test_domain_errors(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    path = tmp_path / "domain.yml"
    path.write_text(content)
    with pytest.raises(TrainingDataError) as caught:
        load_domain(path)
    assert caught.value.line == line, str(caught.value)
    assert fragment in str(caught.value)


def test_story_errors(project_dir: Path) -> None:
    (project_dir / "data" / "stories.yml").write_text("stories:\n- story: s\n  steps:\n  - greet\n")
    with pytest.raises(TrainingDataError, match=r"stories.yml:4: story 's': a step must be"):
        load_project(project_dir)


def test_unknown_top_level_key_in_data_file(project_dir: Path) -> None:
    (project_dir / "data" / "extra.yml").write_text("nlu: []\nstorys: []\n")
    with pytest.raises(TrainingDataError, match=r"extra.yml:2: unknown top-level key 'storys'"):
        load_project(project_dir)


def test_csv_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhi,greet\n")
    with pytest.raises(TrainingDataError, match="header row"):
        load_csv(bad)
    bad.write_text("text,intent\nhi,greet\n,bye\n")
    with pytest.raises(TrainingDataError, match=r"bad.csv:3: a row needs both"):
        load_csv(bad)


def test_missing_domain_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(TrainingDataError, match="domain file not found"):
        load_project(tmp_path)


def test_csv_label_column_aliases(tmp_path: Path) -> None:
    csv_file = tmp_path / "banking.csv"
    csv_file.write_text("text,category\nWhere is my transfer from [country]?,transfer_delay\n")
    (example,) = load_csv(csv_file).examples
    assert (example.text, example.intent) == (
        "Where is my transfer from [country]?",
        "transfer_delay",
    )
    assert example.entities == ()
