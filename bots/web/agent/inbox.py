"""The inbox: conversations waiting for a person (live, Server-Sent Events) and tickets.

``GET /agent/api/inbox/stream`` sends a ``snapshot`` event (the waiting conversations at a bus
position) and then every change after it, in bus order (``handoff``, ``activity``, ``ticket``),
with a comment every 15 s to keep proxies from closing it. Nothing polls: the board follows the
bus. ``GET /agent/api/tickets`` searches tickets with the agent's own claim.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from bots.web.agent import calls
from bots.web.agent.auth import workspace_of
from bots.web.errors import answers

KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def board_events(request: Request) -> AsyncIterator[bytes]:
    """The inbox stream of ``request``'s agent (ends when the client goes away)."""
    board = request.app.state.gateway.workspace.board
    await asyncio.wait_for(board.ready.wait(), 30.0)
    snapshot, queue = board.watch()
    try:
        yield sse("snapshot", snapshot)
        while True:
            try:
                change = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
                continue
            if change is None:
                yield sse("reset", {"reason": "too many changes at once; open the inbox again"})
                return
            yield sse(change["kind"], change)
    finally:
        board.unwatch(queue)


def inbox_router() -> APIRouter:
    """The inbox's routes."""
    router = APIRouter(prefix="/agent/api", tags=["agent workspace"])

    @router.get(
        "/inbox",
        summary="Conversations waiting for a person (waiting or claimed), oldest first",
        responses=answers(401, 403, 429, 500),
    )
    async def inbox(request: Request) -> dict[str, Any]:
        workspace = workspace_of(request)
        await workspace.agent(request)
        board = workspace.board
        await asyncio.wait_for(board.ready.wait(), 30.0)
        return {"seq": board.position, "conversations": [i.out() for i in board.waiting()]}

    @router.get(
        "/inbox/stream",
        summary="The inbox, live (Server-Sent Events: snapshot, then changes in bus order)",
        response_class=StreamingResponse,
        responses=answers(401, 403, 429, 500),
    )
    async def inbox_stream(request: Request) -> StreamingResponse:
        await workspace_of(request).agent(request)
        return StreamingResponse(
            board_events(request), media_type="text/event-stream", headers=SSE_HEADERS
        )

    @router.get(
        "/tickets",
        summary="Tickets by status, priority, assignee, or SLA due soon",
        responses=answers(401, 403, 422, 429, 500, 502, 503),
    )
    async def tickets(
        request: Request,
        status: list[Literal["open", "pending", "on_hold", "solved", "closed"]] = Query(default=[]),
        priority: list[Literal["low", "normal", "high", "urgent"]] = Query(default=[]),
        assignee: str | None = Query(default=None, max_length=320, description="handle, me, none"),
        sla_due_minutes: int | None = Query(
            default=None, ge=0, le=43200, description="SLA target due within N minutes"
        ),
        text: str | None = Query(default=None, max_length=200),
        limit: int = Query(default=50, ge=1, le=100),
        offset: int = Query(default=0, ge=0),
    ) -> Any:
        workspace = workspace_of(request)
        agent = await workspace.agent(request)
        payload: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            payload["status"] = status
        if priority:
            payload["priority"] = priority
        if assignee:
            payload["assignee"] = assignee
        if sla_due_minutes is not None:
            payload["sla_due_within_minutes"] = sla_due_minutes
        if text:
            payload["text"] = text
        return await calls.management(workspace.gateway, agent, "ticket_search", payload)

    return router
