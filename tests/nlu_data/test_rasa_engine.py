"""``RasaEngine`` against a local HTTP server speaking Rasa's exact ``/model/parse`` format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request

from events.embedded import free_port
from skills.nlu.errors import NLUEngineError, NLUEngineUnavailable
from skills.nlu.rasa_engine import RasaEngine
from skills.nlu.types import NLUEngine

TOKEN = "s3cret"


def rasa_parse_response(text: str) -> dict[str, Any]:
    """What Rasa 3.6 (DIET + EntitySynonymMapper + ResponseSelector) answers."""
    start = text.index("NYC")
    when = text.index("tomorrow")
    return {
        "text": text,
        "intent": {"name": "book_flight", "confidence": 0.9731},
        "entities": [
            {
                "entity": "city",
                "start": start,
                "end": start + 3,
                "confidence_entity": 0.9962,
                "role": "destination",
                "confidence_role": 0.91,
                "value": "New York",
                "extractor": "DIETClassifier",
                "processors": ["EntitySynonymMapper"],
            },
            {
                "entity": "time",
                "start": when,
                "end": when + 8,
                "text": "tomorrow",
                "value": "2026-11-27T00:00:00.000+00:00",
                "confidence": 1.0,
                "additional_info": {"grain": "day"},
                "extractor": "DucklingEntityExtractor",
            },
        ],
        "text_tokens": [[0, 4], [5, 7]],
        "intent_ranking": [
            {"name": "book_flight", "confidence": 0.9731},
            {"name": "check_ticket_status", "confidence": 0.0201},
            {"name": "greet", "confidence": 0.0068},
        ],
        "response_selector": {
            "all_retrieval_intents": [],
            "default": {"response": {"responses": None, "confidence": 0.0}, "ranking": []},
        },
    }


def make_app(state: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    def check(request: Request) -> None:
        if request.query_params.get("token") != TOKEN:
            raise HTTPException(401, {"status": "failure", "reason": "NotAuthenticated"})

    @app.get("/status")
    async def status(request: Request) -> dict[str, Any]:
        check(request)
        return {
            "model_id": None,
            "model_file": "models/20261126-041500-brisk-fox.tar.gz",
            "num_active_training_jobs": 0,
            "fingerprint": {},
        }

    @app.post("/model/parse")
    async def parse(request: Request) -> Any:
        check(request)
        body = await request.json()
        state["calls"] += 1
        text = body["text"]
        if text == "crash":
            raise HTTPException(500, "An unexpected error occurred.")
        if text == "low":
            return {
                "text": text,
                "intent": {"name": "nlu_fallback", "confidence": 0.3},
                "entities": [],
                "intent_ranking": [
                    {"name": "nlu_fallback", "confidence": 0.3},
                    {"name": "greet", "confidence": 0.21},
                ],
            }
        return rasa_parse_response(text)

    return app


@pytest.fixture
async def rasa_url() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"calls": 0}
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(make_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        await task


async def test_parse_maps_rasa_response(rasa_url: tuple[str, dict[str, Any]]) -> None:
    url, state = rasa_url
    engine = RasaEngine(url + "/", token=TOKEN)
    assert isinstance(engine, NLUEngine)
    try:
        text = "fly to NYC tomorrow"
        result = await engine.parse(text)
    finally:
        await engine.aclose()
    assert state["calls"] == 1
    assert result.engine == "rasa" and engine.name == "rasa"
    assert result.model_version == "20261126-041500-brisk-fox" == engine.version
    assert (result.intent.name, result.intent.confidence) == ("book_flight", 0.9731)
    assert [r.name for r in result.intent_ranking] == [
        "book_flight",
        "check_ticket_status",
        "greet",
    ]
    city, when = result.entities
    assert (city.entity, city.text, city.value, city.start, city.end) == (
        "city",
        "NYC",
        "New York",
        7,
        10,
    )
    assert (city.role, city.extractor, city.confidence) == ("destination", "DIETClassifier", 0.9962)
    assert when.text == "tomorrow" and when.confidence == 1.0
    assert not result.is_fallback


async def test_fallback_is_flagged(rasa_url: tuple[str, dict[str, Any]]) -> None:
    engine = RasaEngine(rasa_url[0], token=TOKEN)
    try:
        result = await engine.parse("low")
    finally:
        await engine.aclose()
    assert result.is_fallback and result.intent.name == "nlu_fallback"


async def test_server_error_and_bad_token(rasa_url: tuple[str, dict[str, Any]]) -> None:
    url, _ = rasa_url
    engine = RasaEngine(url, token=TOKEN)
    with pytest.raises(NLUEngineUnavailable, match=r"HTTP 500"):
        await engine.parse("crash")
    await engine.aclose()
    engine = RasaEngine(url, token="wrong")
    with pytest.raises(NLUEngineUnavailable, match=r"refused .*HTTP 401.*FRONTDOOR_RASA_TOKEN"):
        await engine.parse("fly to NYC")
    await engine.aclose()


async def test_down_server_raises_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    engine = RasaEngine(url, timeout=2.0)
    try:
        with pytest.raises(NLUEngineUnavailable, match=rf"Rasa server at {url} is not reachable"):
            await engine.parse("hello")
    finally:
        await engine.aclose()


def test_non_object_json_is_an_engine_error() -> None:
    from skills.nlu.rasa_engine import parse_rasa_response

    with pytest.raises(NLUEngineError):
        parse_rasa_response(["not", "an", "object"], "hi", "v1")
