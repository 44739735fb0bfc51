"""NLU settings (environment variables ``FRONTDOOR_*``) and the engine factory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from skills.nlu.errors import NLUError

if TYPE_CHECKING:
    from events.bus import Bus


class NLUSettings(BaseSettings):
    """Which engine parses messages and where its models come from."""

    model_config = SettingsConfigDict(env_prefix="FRONTDOOR_", extra="ignore")

    #: ``builtin`` (trained locally, served from the model registry) or ``rasa`` (a Rasa server)
    nlu_engine: Literal["builtin", "rasa"] = "builtin"
    #: where published models live: ``dir`` (FRONTDOOR_NLU_MODELS_DIR) or ``nats`` (object store)
    nlu_model_store: Literal["dir", "nats"] = "dir"
    nlu_models_dir: Path = Path("models")
    #: local copies of models downloaded from NATS
    nlu_cache_dir: Path = Path(".frontdoor/model-cache")
    #: how often the directory store is polled for a new ``latest`` (seconds)
    nlu_poll_seconds: float = 2.0
    rasa_url: str = "http://localhost:5005"
    rasa_token: SecretStr | None = None
    rasa_timeout: float = 10.0


def make_registry(settings: NLUSettings, bus: Bus | None = None) -> Any:
    """The model registry the settings ask for."""
    from skills.nlu.lifecycle.registry import DirectoryRegistry, NatsRegistry

    if settings.nlu_model_store == "nats":
        if bus is None:
            raise NLUError("FRONTDOOR_NLU_MODEL_STORE=nats needs a NATS connection")
        return NatsRegistry(bus, settings.nlu_cache_dir, poll_interval=settings.nlu_poll_seconds)
    return DirectoryRegistry(settings.nlu_models_dir, poll_interval=settings.nlu_poll_seconds)


async def open_engine(settings: NLUSettings, bus: Bus | None = None) -> Any:
    """A ready ``NLUEngine``: a started ``ModelManager`` or a ``RasaEngine``.

    Both have ``aclose()``. With the built-in engine and no model published yet, the manager
    starts anyway and parses raise ``NLUEngineUnavailable`` until a model appears.
    """
    if settings.nlu_engine == "rasa":
        from skills.nlu.rasa_engine import RasaEngine

        token = settings.rasa_token.get_secret_value() if settings.rasa_token else None
        return RasaEngine(settings.rasa_url, token=token, timeout=settings.rasa_timeout)
    from skills.nlu.lifecycle.manager import ModelManager

    manager = ModelManager(make_registry(settings, bus))
    await manager.start()
    return manager
