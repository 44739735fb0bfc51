"""The HTTP door: one FastAPI route per public action, with OpenAPI docs from its models.

``POST /<service>/<action>`` takes the input model and answers the output model (200), or a
clear error: 401 no or a bad credential, 403 missing role, 409 domain error, 422 invalid input,
429 too many calls, 500 with a reference, 503 the service is not answering.

The door is served by the gateway, wherever the service runs: it authenticates the caller
(``ActorResolver``, API keys by default), then calls the service over NATS with a claim the
gateway signs (``RemoteCall``), so the service checks it exactly as it checks a chat intent.
Internal actions (``internal=True``) have no route.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend_services.runtime.service import HandlerSpec, Service
from events.envelope import Actor
from events.payloads import Reply


@dataclass(frozen=True)
class DoorCaller:
    """Who calls a door, as its credential proved: the actor and a verified email."""

    actor: Actor
    email: str | None = None


ActorResolver = Callable[[Request], Awaitable[DoorCaller]]
#: ``(service, action, payload, caller) -> Reply``: the signed call over NATS.
RemoteCall = Callable[[str, str, dict[str, Any], DoorCaller], Awaitable[Reply]]

_HTTP_STATUS = {"invalid": 422, "denied": 403, "error": 500, "working": 202}


class ErrorOut(BaseModel):
    """An error answer: what went wrong, and for a failure the reference to quote."""

    detail: Any
    status: str | None = None
    errors: list[dict[str, Any]] = []


#: The answers every door route may give besides its 200 (listed in the OpenAPI document).
DOOR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or an unknown or revoked one"},
    403: {"model": ErrorOut, "description": "The caller lacks a role this action needs"},
    409: {"model": ErrorOut, "description": "A domain rule refused it (e.g. a transition)"},
    413: {"model": ErrorOut, "description": "The body is larger than the limit"},
    422: {"model": ErrorOut, "description": "The input is not valid"},
    429: {"model": ErrorOut, "description": "Too many calls; retry after Retry-After seconds"},
    500: {"model": ErrorOut, "description": "The handler failed; quote the reference"},
    503: {"model": ErrorOut, "description": "The service is not answering right now"},
}


def reply_response(reply: Reply) -> Any:
    """The HTTP answer of a service's reply (its data on success)."""
    if reply.status == "ok":
        return reply.data or {}
    status = _HTTP_STATUS.get(reply.status, 409)
    if reply.status == "invalid" and not reply.errors:
        status = 409  # a domain rule refused it (e.g. a lifecycle transition)
    content: dict[str, Any] = {"detail": reply.text, "status": reply.status, "errors": reply.errors}
    if reply.reference:
        content["reference"] = reply.reference
    return JSONResponse(status_code=status, content=content)


def _route(
    service: str, spec: HandlerSpec, call: RemoteCall, resolve: ActorResolver
) -> Callable[..., Any]:
    async def endpoint(payload: BaseModel, caller: DoorCaller) -> Any:
        reply = await call(service, spec.action, payload.model_dump(mode="json"), caller)
        return reply_response(reply)

    # FastAPI reads the signature: give it the real input model and the actor dependency.
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "payload", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=spec.input_model
            ),
            inspect.Parameter(
                "caller",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=DoorCaller,
                default=Depends(resolve),
            ),
        ]
    )
    endpoint.__name__ = f"{service}_{spec.action}"
    endpoint.__doc__ = spec.summary
    return endpoint


def http_router(service: Service, call: RemoteCall, resolve: ActorResolver) -> APIRouter:
    """A router with ``POST /<service>/<action>`` for each public action of ``service``."""
    name = service.name
    router = APIRouter(prefix=f"/{name}", tags=[name])
    for spec in service.public_handlers().values():
        roles = ", ".join(sorted(spec.roles)) if spec.roles is not None else "anyone"
        router.add_api_route(
            f"/{spec.action}",
            _route(name, spec, call, resolve),
            methods=["POST"],
            response_model=spec.output_model,
            summary=spec.summary or spec.action,
            description=f"{spec.summary}\n\nRoles: {roles}.",
            responses=DOOR_RESPONSES,
        )
    return router


def create_http_app(
    services: Iterable[Service],
    call: RemoteCall,
    resolve: ActorResolver,
    *,
    prefix: str = "/services",
) -> FastAPI:
    """A FastAPI app serving every service's HTTP door under ``prefix``."""
    app = FastAPI(title="Frontdoor services", version="0.1.0")
    for service in services:
        app.include_router(http_router(service, call, resolve), prefix=prefix)
    return app
