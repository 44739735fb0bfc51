"""Fixtures of the model-lifecycle tests: a tiny registered engine and a small data set."""

from __future__ import annotations

import pytest

from skills.nlu.lifecycle.engines import register_engine_class
from skills.nlu.types import EntitySpan, Example, TrainingData
from tests.nlu_lifecycle.tiny_engine import TinyEngine

register_engine_class("tiny", TinyEngine)


def _ex(text: str, intent: str, *spans: EntitySpan) -> Example:
    return Example(text=text, intent=intent, entities=spans)


@pytest.fixture
def tiny_data() -> TrainingData:
    """Three well separated intents, four examples each."""
    return TrainingData(
        examples=[
            _ex("hello there", "greet"),
            _ex("hello friend", "greet"),
            _ex("hi hello", "greet"),
            _ex("hello hello", "greet"),
            _ex("bye now", "goodbye"),
            _ex("bye bye", "goodbye"),
            _ex("goodbye and bye", "goodbye"),
            _ex("ok bye", "goodbye"),
            _ex(
                "open a ticket", "open_ticket", EntitySpan(entity="x", start=0, end=4, value="open")
            ),
            _ex("ticket for my laptop", "open_ticket"),
            _ex("new ticket please", "open_ticket"),
            _ex("file a ticket", "open_ticket"),
        ],
        synonyms={"hey": "hello"},
    )


@pytest.fixture(autouse=True)
def _no_gate():
    TinyEngine.gate = None
    yield
    TinyEngine.gate = None
