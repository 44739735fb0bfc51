"""Small training data and a trained (sparse-only) built-in engine for the engine tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from skills.nlu.builtin import BuiltinConfig, BuiltinEngine
from skills.nlu.rasa_data import parse_annotated
from skills.nlu.types import Example, RegexFeature, TrainingData

#: A Wednesday; "this week" is 2026-11-23..29, "last month" 2026-10-01..31.
FIXED_NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)

RAW = {
    "greet": [
        "hello",
        "hi there",
        "good morning",
        "hey",
        "hello bot",
        "hi, how are you",
        "hey hey",
    ],
    "goodbye": ["bye", "goodbye", "see you later", "bye bye", "talk to you later", "ciao", "cya"],
    "ticket_status": [
        "what is the status of ticket #12",
        "any news on my ticket",
        "is my ticket #7 resolved",
        "status of issue 42 please",
        "has ticket 99 been closed",
        "update on my support ticket",
        "where is my ticket at",
    ],
    "transfer": [
        "send 20 euro to [Alice](person)",
        "transfer money to [Bob](person)",
        "pay [Carol](person) 15 dollars",
        "wire 100 usd to [Dave](person)",
        "send cash to [Erin](person)",
        "move 5 euro to [Frank](person)",
        "transfer 30 to [Gina](person) please",
        "pay back [Hugo](person)",
    ],
    "report": [
        "show me the sales report for [last week](period)",
        "revenue numbers for [this month](period)",
        "give me the report for [yesterday](period)",
        "weekly sales figures",
        "how did sales go [last month](period)",
        "report on signups [today](period)",
        "sales report please",
    ],
}


def make_data(raw: dict[str, list[str]] = RAW) -> TrainingData:
    """Training data with annotations, a synonym, a regex and a lookup table."""
    examples = []
    for intent, lines in raw.items():
        for line in lines:
            text, spans = parse_annotated(line)
            examples.append(Example(text=text, intent=intent, entities=spans))
    return TrainingData(
        examples=examples,
        synonyms={"bobby": "Bob", "eur": "euro"},
        regexes=[RegexFeature(name="order_code", patterns=(r"\bORD-\d{4}\b",))],
        lookups={"currency": ["euro", "US dollar", "usd", "eur"]},
    )


@pytest.fixture(scope="session")
def data() -> TrainingData:
    """The small training set."""
    return make_data()


@pytest.fixture(scope="session")
def engine(data: TrainingData) -> BuiltinEngine:
    """A sparse-only engine (no torch needed), with a fixed clock."""
    trained = BuiltinEngine.train(data, BuiltinConfig(use_embeddings=False))
    trained.now = lambda: FIXED_NOW
    return trained
