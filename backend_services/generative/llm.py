"""The chat model, configured by environment through LangChain (optional).

``FRONTDOOR_LLM_PROVIDER=openai`` with ``FRONTDOOR_LLM_BASE_URL``/``_MODEL``/``_API_KEY`` talks
to any OpenAI-compatible server (vLLM, llama.cpp, Ollama, LocalAI...) via ``langchain-openai``,
imported only then (it is not a dependency). Without a provider the service stays offline.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from backend_services.generative.settings import GenerativeSettings
from events.errors import FrontdoorError


class LLMConfigError(FrontdoorError):
    """The configured chat model cannot be built."""


def build_chat_model(settings: GenerativeSettings) -> BaseChatModel | None:
    """The configured chat model, or ``None`` for offline (extractive) mode."""
    if settings.llm_provider == "none":
        return None
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise LLMConfigError(
            "FRONTDOOR_LLM_PROVIDER=openai needs the langchain-openai package "
            "(pip install langchain-openai)"
        ) from exc
    api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    return ChatOpenAI(  # type: ignore[no-any-return]
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=api_key,
        temperature=settings.llm_temperature,
        timeout=settings.llm_timeout_seconds,
        max_retries=1,
    )


def model_name(model: BaseChatModel | None) -> str | None:
    """A short name of the model for replies (no secrets)."""
    if model is None:
        return None
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str):
            return value
    return type(model).__name__
