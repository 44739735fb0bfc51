"""Entity annotations are stripped to plain text with exact character spans."""

from __future__ import annotations

import pytest

from skills.nlu.data.annotations import AnnotationError, parse_annotated


def test_plain_text_has_no_entities() -> None:
    assert parse_annotated("hello there") == ("hello there", ())


def test_round_bracket_annotation_and_synonym_shorthand() -> None:
    text, spans = parse_annotated("fly from [SF](city:San Francisco) to [Boston](city) today")
    assert text == "fly from SF to Boston today"
    assert [(s.entity, text[s.start : s.end], s.value) for s in spans] == [
        ("city", "SF", "San Francisco"),
        ("city", "Boston", "Boston"),
    ]


def test_json_annotation_with_role_group_and_value() -> None:
    raw = 'to [NYC]{"entity": "city", "role": "destination", "group": "2", "value": "New York"}!'
    text, spans = parse_annotated(raw)
    assert text == "to NYC!"
    (span,) = spans
    assert (span.start, span.end, span.entity) == (3, 6, "city")
    assert (span.value, span.role, span.group) == ("New York", "destination", "2")


def test_list_annotation_puts_several_entities_on_one_span() -> None:
    text, spans = parse_annotated('a [b c][{"entity": "x"}, {"entity": "y", "value": "Z"}] d')
    assert text == "a b c d"
    assert [(s.entity, s.start, s.end, s.value) for s in spans] == [
        ("x", 2, 5, "b c"),
        ("y", 2, 5, "Z"),
    ]


def test_json_strings_may_contain_closing_braces() -> None:
    text, spans = parse_annotated('[x]{"entity": "e", "value": "a}b"} tail')
    assert text == "x tail"
    assert spans[0].value == "a}b"


def test_bracket_without_annotation_stays_literal() -> None:
    text, spans = parse_annotated("press [enter] then [go](key)")
    assert text == "press [enter] then go"
    assert len(spans) == 1 and text[spans[0].start : spans[0].end] == "go"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("book [Berlin(city)", "no closing ']'"),
        ("book [Berlin](city", "unbalanced '('"),
        ('book [Berlin]{"entity": "city"', "unbalanced '{'"),
        ('book [Berlin]{"entity": }', "invalid JSON"),
        ('book [Berlin]{"value": "x"}', 'no "entity"'),
        ('book [Berlin]{"entity": "c", "colour": "red"}', "unknown key"),
        ("book [Berlin]()", "empty entity name"),
        ("book [](city)", "empty annotated text"),
    ],
)
def test_malformed_annotations_are_rejected(raw: str, fragment: str) -> None:
    with pytest.raises(AnnotationError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        parse_annotated(raw)
