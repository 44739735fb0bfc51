"""Settings of the generative service (pydantic-settings; built in ``on_startup``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class GenerativeSettings(BaseSettings):
    """Which chat model (if any), which retriever, which experts."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    llm_provider: Literal["none", "openai"] = Field(
        default="none",
        validation_alias=_env("FRONTDOOR_LLM_PROVIDER"),
        description="'openai' = any OpenAI-compatible server (needs langchain-openai); "
        "'none' = offline extractive mode",
    )
    llm_base_url: str | None = Field(default=None, validation_alias=_env("FRONTDOOR_LLM_BASE_URL"))
    llm_model: str = Field(default="gpt-4o-mini", validation_alias=_env("FRONTDOOR_LLM_MODEL"))
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("FRONTDOOR_LLM_API_KEY")
    )
    llm_temperature: float = Field(
        default=0.2, ge=0, le=2, validation_alias=_env("FRONTDOOR_LLM_TEMPERATURE")
    )
    llm_timeout_seconds: float = Field(
        default=60.0, gt=0, validation_alias=_env("FRONTDOOR_LLM_TIMEOUT")
    )
    retriever: Literal["auto", "embeddings", "tfidf"] = Field(
        default="auto",
        validation_alias=_env("FRONTDOOR_RETRIEVER"),
        description="'auto': sentence embeddings when the [ml] extra is installed, else TF-IDF",
    )
    min_similarity: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        validation_alias=_env("FRONTDOOR_RETRIEVAL_MIN_SIMILARITY"),
        description="Below this cosine similarity a passage is not relevant "
        "(default: 0.3 for embeddings, 0.12 for TF-IDF)",
    )
    experts_file: Path | None = Field(
        default=None,
        validation_alias=_env("FRONTDOOR_EXPERTS_FILE"),
        description="YAML file of experts (default: the built-in 'ops' expert)",
    )
