"""The ticket view: a ticket with its SLA timers and comments, its history, and changes.

Each call is management's own action with the agent's claim (``ticket_get``, ``ticket_history``,
``ticket_update``, ``ticket_assign``, ``ticket_comment`` with ``public`` false for an internal
note), so management applies its roles and lifecycle rules and keeps the history.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from bots.web.agent import calls
from bots.web.agent.auth import workspace_of
from bots.web.errors import answers
from bots.web.text import EdgeText

TicketNumber = Path(ge=1, le=2**31 - 1)


class TicketChange(BaseModel):
    """Status and/or priority, with a note kept in the history."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["open", "pending", "on_hold", "solved", "closed"] | None = None
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    note: EdgeText | None = Field(default=None, max_length=2000)


class Assign(BaseModel):
    """An agent's handle, ``me``, or null to unassign."""

    model_config = ConfigDict(extra="forbid")

    assignee: EdgeText | None = Field(default=None, max_length=320)


class Comment(BaseModel):
    """A public comment (the requester sees it) or an internal note (``public`` false)."""

    model_config = ConfigDict(extra="forbid")

    body: EdgeText = Field(min_length=1, max_length=10000)
    public: bool = True


def tickets_router() -> APIRouter:
    """The ticket view's routes."""
    router = APIRouter(prefix="/agent/api/tickets/{number}", tags=["agent workspace"])
    reading = answers(401, 403, 404, 422, 429, 500, 502, 503)

    async def call(request: Request, action: str, payload: dict[str, Any], change: bool) -> Any:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=change)
        return await calls.management(workspace.gateway, agent, action, payload)

    @router.get("", summary="A ticket: status, assignee, SLA, comments", responses=reading)
    async def ticket(request: Request, number: int = TicketNumber) -> Any:
        return await call(request, "ticket_get", {"ticket": number}, False)

    @router.get("/history", summary="Every change of a ticket, oldest first", responses=reading)
    async def history(request: Request, number: int = TicketNumber) -> Any:
        return await call(request, "ticket_history", {"ticket": number}, False)

    @router.post("/update", summary="Change status and/or priority", responses=reading)
    async def update(request: Request, body: TicketChange, number: int = TicketNumber) -> Any:
        payload = {"ticket": number, **body.model_dump(exclude_none=True)}
        return await call(request, "ticket_update", payload, True)

    @router.post("/assign", summary="Assign to an agent (or unassign)", responses=reading)
    async def assign(request: Request, body: Assign, number: int = TicketNumber) -> Any:
        return await call(request, "ticket_assign", {"ticket": number, **body.model_dump()}, True)

    @router.post("/comment", summary="A public comment or an internal note", responses=reading)
    async def comment(request: Request, body: Comment, number: int = TicketNumber) -> Any:
        return await call(request, "ticket_comment", {"ticket": number, **body.model_dump()}, True)

    return router
