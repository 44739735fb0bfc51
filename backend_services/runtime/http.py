"""The HTTP door: one FastAPI route per handler, with OpenAPI docs from the handler's models.

``POST /<service>/<action>`` takes the input model and answers the output model (200), or a
clear error: 422 invalid input, 403 missing role, 409 domain error, 500 with a reference.
The actor comes from an injectable ``ActorResolver`` (API keys are resolved by management).
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend_services.runtime.invoke import failure_reference, invoke
from backend_services.runtime.runner import ServiceRunner
from backend_services.runtime.service import HandlerSpec
from events import subjects
from events.envelope import Actor, Conversation, Envelope

ActorResolver = Callable[[Request], Awaitable[Actor]]

_HTTP_STATUS = {"invalid": 422, "denied": 403, "error": 500}


async def anonymous_actor(request: Request) -> Actor:
    """Default resolver: an anonymous caller with the ``user`` role."""
    return Actor(id="anonymous", roles=("user",))


def _route(runner: ServiceRunner, spec: HandlerSpec, resolve: ActorResolver) -> Callable[..., Any]:
    input_model = spec.input_model

    async def endpoint(payload: BaseModel, actor: Actor) -> Any:
        envelope = Envelope.new(
            subjects.intent_type(runner.service.name, spec.action),
            payload,
            conversation=Conversation(channel="api", id=f"http-{uuid.uuid4().hex}"),
            actor=actor,
        )
        try:
            outcome = await invoke(spec, runner.context, envelope)
        except Exception as exc:
            reference = failure_reference(envelope)
            logging.getLogger("frontdoor.runtime").error(
                "handler %s.%s failed over HTTP (reference %s)",
                runner.service.name,
                spec.action,
                reference,
                exc_info=exc,
            )
            raise HTTPException(
                500, detail={"message": "internal error", "reference": reference}
            ) from exc
        reply = outcome.reply
        if outcome.output is not None:
            return outcome.output
        status = _HTTP_STATUS.get(reply.status, 409)
        if reply.status == "invalid" and not reply.errors:
            status = 409  # a domain rule refused it (e.g. a lifecycle transition)
        return JSONResponse(
            status_code=status,
            content={"detail": reply.text, "status": reply.status, "errors": reply.errors},
        )

    # FastAPI reads the signature: give it the real input model and the actor dependency.
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "payload", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=input_model
            ),
            inspect.Parameter(
                "actor",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Actor,
                default=Depends(resolve),
            ),
        ]
    )
    endpoint.__name__ = f"{runner.service.name}_{spec.action}"
    endpoint.__doc__ = spec.summary
    return endpoint


def http_router(runner: ServiceRunner, resolve: ActorResolver = anonymous_actor) -> APIRouter:
    """A router with ``POST /<service>/<action>`` for each handler of ``runner``'s service."""
    name = runner.service.name
    router = APIRouter(prefix=f"/{name}", tags=[name])
    for spec in runner.service.handlers.values():
        out: type[BaseModel] = spec.output_model
        roles = ", ".join(sorted(spec.roles)) if spec.roles is not None else "anyone"
        router.add_api_route(
            f"/{spec.action}",
            _route(runner, spec, resolve),
            methods=["POST"],
            response_model=out,
            summary=spec.summary or spec.action,
            description=f"{spec.summary}\n\nRoles: {roles}.",
            responses={403: {"description": "Missing role"}, 422: {"description": "Invalid"}},
        )
    return router


def create_http_app(
    runners: list[ServiceRunner],
    resolve: ActorResolver = anonymous_actor,
    *,
    prefix: str = "/services",
) -> FastAPI:
    """A FastAPI app serving every runner's HTTP door under ``prefix``."""
    app = FastAPI(title="Frontdoor services", version="0.1.0")
    for runner in runners:
        app.include_router(http_router(runner, resolve), prefix=prefix)
    return app
