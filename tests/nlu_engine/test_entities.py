"""Entity extraction: regexes, lookups, the CRF, synonyms and built-in values (fixed now)."""

from __future__ import annotations

from datetime import datetime

import pytest

from skills.nlu.builtin import BuiltinEngine
from skills.nlu.entities import EntityPipeline, parse_builtin_values
from skills.nlu.types import EntityMatch, RegexFeature, TrainingData

from .conftest import FIXED_NOW


def find(entities: list[EntityMatch], name: str) -> list[EntityMatch]:
    return [e for e in entities if e.entity == name]


def test_regex_entity_with_span(engine: BuiltinEngine) -> None:
    text = "where is order ORD-1234 now"
    (match,) = find(engine.parse_sync(text).entities, "order_code")
    assert (match.start, match.end, match.value, match.extractor) == (15, 23, "ORD-1234", "regex")
    assert text[match.start : match.end] == match.text


def test_lookup_is_whole_word_case_insensitive_and_uses_synonyms(engine: BuiltinEngine) -> None:
    entities = engine.parse_sync("pay 5 EUR and 3 US Dollar, not eurovision").entities
    currencies = find(entities, "currency")
    assert [(c.text, c.value) for c in currencies] == [("EUR", "euro"), ("US Dollar", "US dollar")]
    assert [(c.start, c.end) for c in currencies] == [(6, 9), (16, 25)]
    assert all(c.extractor == "lookup" for c in currencies)


def test_learned_entity_with_span_and_synonym(engine: BuiltinEngine) -> None:
    text = "send 20 euro to Bobby"
    (person,) = find(engine.parse_sync(text).entities, "person")
    assert person.extractor == "crf"
    assert (person.start, person.end, person.text) == (16, 21, "Bobby")
    assert person.value == "Bob"  # synonym applied to the learned value
    assert 0.0 < (person.confidence or 0) <= 1.0
    (other,) = find(engine.parse_sync("transfer money to Zelda").entities, "person")
    assert (other.text, other.value) == ("Zelda", "Zelda")


def test_annotated_values_become_synonyms() -> None:
    from skills.nlu.rasa_data import parse_annotated
    from skills.nlu.types import Example

    examples = []
    for line in [
        'fly to [NYC]{"entity": "city", "value": "New York"}',
        "fly to [Paris](city)",
        "book a flight to [Berlin](city)",
        "fly me to [Rome](city) please",
    ]:
        text, spans = parse_annotated(line)
        examples.append(Example(text=text, intent="fly", entities=spans))
    pipeline = EntityPipeline.train(TrainingData(examples=examples))
    (city,) = find(pipeline.extract("fly to NYC"), "city")
    assert (city.text, city.value) == ("NYC", "New York")


def test_numbers_emails_and_tickets() -> None:
    text = "re #42: refund 1,250.50 to jo.doe+x@example.co.uk, ticket 17 and three items"
    found = parse_builtin_values(text, FIXED_NOW)
    values = [(e.entity, e.value, e.text) for e in found]
    assert ("ticket_id", "42", "#42") in values
    assert ("ticket_id", "17", "ticket 17") in values
    assert ("number", 1250.5, "1,250.50") in values
    assert ("number", 3, "three") in values
    assert ("email", "jo.doe+x@example.co.uk", "jo.doe+x@example.co.uk") in values
    # no number is reported inside a ticket reference or an e-mail address
    assert not any(e.entity == "number" and e.value in (42, 17) for e in found)
    for e in found:
        assert text[e.start : e.end] == e.text


@pytest.mark.parametrize(
    ("phrase", "value"),
    [
        ("today", "2026-11-25"),
        ("yesterday", "2026-11-24"),
        ("tomorrow", "2026-11-26"),
        ("this week", {"from": "2026-11-23", "to": "2026-11-29"}),
        ("last week", {"from": "2026-11-16", "to": "2026-11-22"}),
        ("last month", {"from": "2026-10-01", "to": "2026-10-31"}),
        ("this month", {"from": "2026-11-01", "to": "2026-11-30"}),
        ("2026-02-03", "2026-02-03"),
    ],
)
def test_relative_dates_against_a_fixed_now(phrase: str, value: object) -> None:
    text = f"show tickets from {phrase} please"
    (time,) = find(parse_builtin_values(text, FIXED_NOW), "time")
    assert time.value == value
    assert (time.start, time.text) == (18, phrase)


def test_last_month_in_january_wraps_the_year() -> None:
    (time,) = parse_builtin_values("last month", datetime(2027, 1, 10))
    assert time.value == {"from": "2026-12-01", "to": "2026-12-31"}


def test_engine_uses_its_injected_clock(engine: BuiltinEngine) -> None:
    entities = engine.parse_sync("status of #12 since yesterday").entities
    assert [(e.entity, e.value) for e in entities if e.extractor == "builtin"] == [
        ("ticket_id", "12"),
        ("time", "2026-11-24"),
    ]


def test_builtin_value_wins_over_regex_and_crf_for_the_same_entity() -> None:
    from skills.nlu.rasa_data import parse_annotated
    from skills.nlu.types import Example

    examples = []
    for line in [
        "close ticket [#12](ticket_id)",
        "what about [#7](ticket_id)",
        "reopen [#301](ticket_id) please",
        "status of [#5](ticket_id)",
    ]:
        text, spans = parse_annotated(line)
        examples.append(Example(text=text, intent="ticket", entities=spans))
    regex = RegexFeature(name="ticket_id", patterns=(r"#\d+",))
    pipeline = EntityPipeline.train(TrainingData(examples=examples, regexes=[regex]))
    found = find(pipeline.extract("close ticket #44", FIXED_NOW), "ticket_id")
    assert [(e.value, e.extractor) for e in found] == [("44", "builtin")]
    assert pipeline.tagger is not None
    assert [e.text for e in pipeline.tagger.extract("close ticket #44")] == ["#44"]


def test_repeated_messages_reuse_learned_entities_but_dates_follow_the_clock(
    engine: BuiltinEngine,
) -> None:
    text = "send 20 euro to Bobby since yesterday"
    pipeline = engine.entities
    first = pipeline.extract(text, datetime(2026, 11, 25))
    hits = pipeline._learned.cache_info().hits
    later = pipeline.extract(text, datetime(2026, 12, 2))
    assert pipeline._learned.cache_info().hits == hits + 1  # the CRF did not run again
    assert find(later, "person") == find(first, "person")
    assert find(first, "time")[0].value == "2026-11-24"
    assert find(later, "time")[0].value == "2026-12-01"  # not frozen by the cache
    pipeline.tagger = pipeline.tagger  # a new tagger forgets what the old one found
    assert pipeline._learned.cache_info().currsize == 0
