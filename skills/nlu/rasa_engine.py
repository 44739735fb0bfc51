"""An NLU engine backed by a real Rasa server (``POST /model/parse``).

Configure it with ``FRONTDOOR_NLU_ENGINE=rasa`` and ``FRONTDOOR_RASA_URL`` (see
``skills.nlu.lifecycle.settings``). The server must run with ``--enable-api``; when it was
started with ``--auth-token``, pass the same token (sent as the ``token`` query parameter).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import httpx

from skills.nlu.errors import NLUEngineError, NLUEngineUnavailable, NLUError
from skills.nlu.types import EntityMatch, IntentScore, ParseResult

#: The intent Rasa's FallbackClassifier predicts when confidence is too low.
RASA_FALLBACK_INTENT = "nlu_fallback"


def _intent(raw: Any) -> IntentScore:
    if not isinstance(raw, dict):
        return IntentScore(name=RASA_FALLBACK_INTENT, confidence=0.0)
    name = raw.get("name") or RASA_FALLBACK_INTENT
    return IntentScore(name=str(name), confidence=float(raw.get("confidence") or 0.0))


def _entity(raw: dict[str, Any], text: str) -> EntityMatch:
    start = raw.get("start")
    end = raw.get("end")
    if isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text):
        surface = text[start:end]
    else:
        surface = str(raw.get("text", raw.get("value", "")))
        start = start if isinstance(start, int) else 0
        end = end if isinstance(end, int) else start + len(surface)
    confidence = raw.get("confidence_entity", raw.get("confidence"))
    return EntityMatch(
        entity=str(raw["entity"]),
        value=raw.get("value", surface),
        text=surface,
        start=start,
        end=end,
        extractor=str(raw.get("extractor") or "rasa"),
        confidence=None if confidence is None else float(confidence),
        role=raw.get("role"),
        group=raw.get("group"),
    )


def parse_rasa_response(body: Any, text: str, model_version: str) -> ParseResult:
    """Map Rasa's ``/model/parse`` JSON to a ``ParseResult`` (raises ``NLUEngineError``)."""
    if not isinstance(body, dict):
        raise NLUEngineError(f"Rasa answered {type(body).__name__}, expected a JSON object")
    try:
        intent = _intent(body.get("intent"))
        ranking = [_intent(r) for r in body.get("intent_ranking") or [] if isinstance(r, dict)]
        if not ranking and intent.name != RASA_FALLBACK_INTENT:
            ranking = [intent]
        entities = [
            _entity(e, text)
            for e in body.get("entities") or []
            if isinstance(e, dict) and e.get("entity")
        ]
    except (TypeError, ValueError, KeyError) as exc:
        raise NLUEngineError(f"unexpected /model/parse response from Rasa: {exc}") from exc
    return ParseResult(
        text=text,
        intent=intent,
        intent_ranking=ranking,
        entities=entities,
        engine="rasa",
        model_version=model_version,
        is_fallback=intent.name == RASA_FALLBACK_INTENT,
    )


def version_from_status(body: Any) -> str | None:
    """The model version from Rasa's ``GET /status`` (``model_id``, else the model file name)."""
    if not isinstance(body, dict):
        return None
    if body.get("model_id"):
        return str(body["model_id"])
    model_file = body.get("model_file")
    if model_file:
        name = PurePosixPath(str(model_file).replace("\\", "/")).name
        return name.removesuffix(".tar.gz")
    fingerprint = body.get("fingerprint")
    if isinstance(fingerprint, dict) and fingerprint.get("trained_at"):
        return f"trained-{fingerprint['trained_at']}"
    return None


class RasaEngine:
    """``NLUEngine`` that asks a Rasa server. One ``httpx.AsyncClient``; close with ``aclose``."""

    name = "rasa"

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        self._version = "unknown"
        self._version_known = False

    @property
    def version(self) -> str:
        """Model version last reported by the server (``unknown`` before the first call)."""
        return self._version

    def _params(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        target = f"{self.url}{path}"
        try:
            response = await self._client.request(method, target, params=self._params(), **kwargs)
        except httpx.TimeoutException as exc:
            raise NLUEngineUnavailable(
                f"Rasa server at {self.url} did not answer {method} {path} in time: "
                f"{type(exc).__name__}"
            ) from exc
        except httpx.HTTPError as exc:
            raise NLUEngineUnavailable(
                f"Rasa server at {self.url} is not reachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code in (401, 403):
            raise NLUEngineUnavailable(
                f"Rasa server at {self.url} refused {method} {path} "
                f"(HTTP {response.status_code}): check FRONTDOOR_RASA_TOKEN"
            )
        if response.status_code >= 400:
            detail = response.text[:300].strip()
            raise NLUEngineUnavailable(
                f"Rasa server at {self.url} answered {method} {path} with HTTP "
                f"{response.status_code}: {detail}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise NLUEngineError(
                f"Rasa server at {self.url} answered {method} {path} with invalid JSON"
            ) from exc

    async def refresh_version(self) -> str:
        """Ask ``GET /status`` which model is loaded; returns (and remembers) its version."""
        found = version_from_status(await self._call("GET", "/status"))
        if found:
            self._version = found
            self._version_known = True
        return self._version

    async def parse(self, text: str) -> ParseResult:
        """Parse one message through the server's ``POST /model/parse``."""
        if not self._version_known:
            try:
                await self.refresh_version()
            except NLUError:
                pass  # /status is optional for parsing; the parse call below decides
            self._version_known = True
        body = await self._call("POST", "/model/parse", json={"text": text})
        return parse_rasa_response(body, text, self._version)

    async def aclose(self) -> None:
        """Close the HTTP client (if this engine created it)."""
        if self._owns_client:
            await self._client.aclose()
