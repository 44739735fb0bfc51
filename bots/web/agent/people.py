"""Everything about a person, exported from the workspace (admins: management decides)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from bots.transcripts import person_document
from bots.web.agent import calls
from bots.web.agent.auth import workspace_of
from bots.web.errors import answers


def people_router() -> APIRouter:
    """``GET /agent/api/people/export?person=...``."""
    router = APIRouter(prefix="/agent/api/people", tags=["agent workspace"])

    @router.get(
        "/export",
        summary="Everything about a person (user record, tickets, conversations) as JSON",
        responses=answers(401, 403, 404, 422, 429, 500, 502, 503),
    )
    async def export(
        request: Request, person: str = Query(min_length=1, max_length=320)
    ) -> JSONResponse:
        workspace = workspace_of(request)
        agent = await workspace.agent(request)
        gateway = workspace.gateway

        async def ask(action: str, payload: dict[str, Any]) -> Any:
            # as the signed-in agent: management allows user_get to admins only
            return await calls.management(gateway, agent, action, payload)

        document = await person_document(gateway.bus, ask, person)
        handle = str(document["user"].get("handle") or "person")
        return JSONResponse(
            document,
            headers={"Content-Disposition": f'attachment; filename="person-{handle}.json"'},
        )

    return router
