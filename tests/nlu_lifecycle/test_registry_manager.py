"""Registries (models folder, NATS object store + KV) and hot switching by a running manager."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from events.bus import Bus
from skills.nlu.errors import ModelNotFound, NLUEngineUnavailable
from skills.nlu.lifecycle.manager import ModelManager
from skills.nlu.lifecycle.registry import DirectoryRegistry, ModelRegistry, NatsRegistry
from skills.nlu.lifecycle.settings import NLUSettings, open_engine
from skills.nlu.lifecycle.training import train_model
from skills.nlu.types import Example, TrainingData
from tests.nlu_lifecycle.tiny_engine import TinyEngine


def _train(data: TrainingData, out: Path, extra: str | None = None) -> Path:
    if extra is not None:  # different data -> different hash -> different version
        data = data.model_copy(
            update={"examples": [*data.examples, Example(text=extra, intent="greet")]}
        )
    return train_model(data, out, engine="tiny", evaluate=False).path


async def test_directory_registry_round_trip(tiny_data: TrainingData, tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "models")
    assert isinstance(registry, ModelRegistry)
    assert await registry.latest() is None
    assert await registry.versions() == []
    v1 = await registry.publish(_train(tiny_data, tmp_path / "build"))
    v2 = await registry.publish(_train(tiny_data, tmp_path / "build", extra="howdy"))
    assert await registry.latest() == v2
    assert await registry.versions() == sorted([v1, v2])
    assert (await registry.fetch(v1)) == tmp_path / "models" / v1
    assert (tmp_path / "models" / "latest").read_text().strip() == v2
    await registry.set_latest(v1)  # roll back
    assert await registry.latest() == v1
    with pytest.raises(ModelNotFound):
        await registry.set_latest("20990101-000000-deadbeef")
    with pytest.raises(ModelNotFound):
        await registry.fetch("../etc")
    # Training straight into the models folder and publishing in place works too.
    v3_dir = _train(tiny_data, tmp_path / "models", extra="yo")
    assert await registry.publish(v3_dir) == v3_dir.name
    assert await registry.latest() == v3_dir.name


async def test_manager_switches_without_restart_and_keeps_in_flight_parses(
    tiny_data: TrainingData, tmp_path: Path
) -> None:
    registry = DirectoryRegistry(tmp_path / "models", poll_interval=0.05)
    manager = ModelManager(registry)
    await manager.start()
    with pytest.raises(NLUEngineUnavailable, match="no NLU model"):
        await manager.parse("hello")
    v1 = await registry.publish(_train(tiny_data, tmp_path / "build"))
    await manager.wait_for_version(v1, timeout=10)
    first = await manager.parse("hello there")
    assert (first.model_version, first.engine) == (v1, "tiny")
    switches: list[tuple[str | None, str]] = []
    manager.on_switch(lambda old, new: switches.append((old, new)))

    # Hold one parse in flight on v1, publish v2, let the manager switch, then release it.
    TinyEngine.gate = asyncio.Event()
    in_flight = asyncio.create_task(manager.parse("bye bye"))
    await asyncio.sleep(0.05)
    v2 = await registry.publish(_train(tiny_data, tmp_path / "build", extra="howdy"))
    await manager.wait_for_version(v2, timeout=10)
    TinyEngine.gate.set()
    assert (await in_flight).model_version == v1
    assert (await manager.parse("bye bye")).model_version == v2
    assert manager.version == v2
    assert switches == [(v1, v2)]

    # A broken publication leaves the current model serving.
    broken = tmp_path / "models" / "20990101-000000-badbadba"
    (broken / "model").mkdir(parents=True)
    (broken / "metadata.json").write_text("{}")
    (tmp_path / "models" / "latest").write_text(broken.name)
    for _ in range(200):
        if manager.last_error:
            break
        await asyncio.sleep(0.02)
    assert manager.last_error and broken.name in manager.last_error
    assert (await manager.parse("hi")).model_version == v2
    await manager.aclose()


async def test_open_engine_from_settings(tiny_data: TrainingData, tmp_path: Path) -> None:
    registry = DirectoryRegistry(tmp_path / "models")
    version = await registry.publish(_train(tiny_data, tmp_path / "build"))
    settings = NLUSettings(nlu_models_dir=tmp_path / "models")
    engine = await open_engine(settings)
    try:
        assert (await engine.parse("hello")).model_version == version
    finally:
        await engine.aclose()
    rasa = await open_engine(NLUSettings(nlu_engine="rasa", rasa_url="http://127.0.0.1:1"))
    assert rasa.name == "rasa"
    await rasa.aclose()


async def test_nats_registry_round_trip_and_switch(
    bus: Bus, tiny_data: TrainingData, tmp_path: Path
) -> None:
    publisher = NatsRegistry(bus, tmp_path / "cache-publisher")
    assert await publisher.latest() is None
    assert await publisher.versions() == []
    with pytest.raises(ModelNotFound):
        await publisher.fetch("20990101-000000-deadbeef")

    v1_dir = _train(tiny_data, tmp_path / "build")
    v1 = await publisher.publish(v1_dir)
    assert await publisher.latest() == v1
    assert await publisher.versions() == [v1]

    # A replica with its own empty cache downloads and unpacks the artifact.
    replica = NatsRegistry(bus, tmp_path / "cache-replica", poll_interval=30.0)
    fetched = await replica.fetch(v1)
    assert fetched == tmp_path / "cache-replica" / v1
    assert (fetched / "model" / "words.json").read_bytes() == (
        v1_dir / "model" / "words.json"
    ).read_bytes()

    # A running manager follows the KV pointer (poll interval 30 s: the switch is the watch).
    manager = ModelManager(replica)
    await manager.start(require_model=True)
    assert manager.version == v1
    v2 = await publisher.publish(_train(tiny_data, tmp_path / "build", extra="howdy"))
    await manager.wait_for_version(v2, timeout=10)
    assert (await manager.parse("hello")).model_version == v2
    assert await publisher.versions() == sorted([v1, v2])

    await publisher.set_latest(v1)  # roll back everywhere
    await manager.wait_for_version(v1, timeout=10)
    with pytest.raises(ModelNotFound):
        await publisher.set_latest("20990101-000000-deadbeef")
    await manager.aclose()


async def test_require_model_fails_on_empty_registry(tmp_path: Path) -> None:
    manager = ModelManager(DirectoryRegistry(tmp_path))
    with pytest.raises(NLUEngineUnavailable, match="no NLU model has been published"):
        await manager.start(require_model=True)
