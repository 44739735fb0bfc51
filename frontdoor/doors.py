"""The services' HTTP doors on the gateway: authenticated here, forwarded as signed requests
(and analysis's chart images, read from the object store).

``/services/<service>/<action>`` exists for every public action of every registered service,
wherever the service runs (this process, a child of ``up --split``, another machine): the
gateway checks the caller's credential (an API key, or a session or site user token), then
calls the service's request door with a claim it signs for that caller, and the service checks
the claim like any other. The OpenAPI document shows each action's models and every answer.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from backend_services import registry
from backend_services.runtime import DoorCaller, RemoteCall, http_router
from bots.web.app import Gateway
from bots.web.guard import authenticated
from events.errors import BusUnavailable
from events.micro import ServiceClient
from events.payloads import Reply


def signed_call(client: ServiceClient, *, timeout: float) -> RemoteCall:
    """The doors' remote call: the caller's claim, signed for a fresh ``api`` conversation, on a
    request to the service; a service that does not answer is a 503."""

    async def call(service: str, action: str, payload: dict[str, Any], caller: DoorCaller) -> Reply:
        try:
            return await client.call(
                service,
                action,
                payload,
                caller.actor,
                conversation=("api", f"http-{uuid.uuid4().hex}"),
                email=caller.email,
                timeout=timeout,
            )
        except BusUnavailable:
            raise HTTPException(
                status_code=503,
                detail=f"The {service} service is not answering right now; please retry.",
                headers={"Retry-After": "5"},
            ) from None

    return call


def add_service_doors(
    app: FastAPI, gateway: Gateway, *, timeout: float, call: RemoteCall | None = None
) -> None:
    """Mount ``/services/<service>/<action>`` for every registered service's public actions
    (``call``: how to reach the services; the signed NATS request by default)."""

    async def resolve(request: Request) -> DoorCaller:
        principal = await authenticated(gateway, request)
        return DoorCaller(actor=principal.actor, email=principal.email)

    call = call or signed_call(gateway.services, timeout=timeout)
    for name in registry.service_names():
        app.include_router(
            http_router(registry.load_service(name), call, resolve), prefix="/services"
        )
    if "analysis" in registry.SERVICES:
        # Chart images are read from the object store: no analysis instance needs to answer.
        from backend_services.analysis.charts import ChartStore
        from backend_services.analysis.service import charts_router

        app.include_router(charts_router(ChartStore(gateway.bus)), prefix="/services")
