"""The agent workspace at ``/agent``: people answer handed-off conversations and tickets.

``add_agent_workspace(app)`` mounts it on a gateway app (``create_gateway_app`` does when
``FRONTDOOR_AGENT_WORKSPACE`` is on): sign-in (``auth``), the live inbox (``board``, ``inbox``),
what users hear about their hand-offs (``notices``), the conversation view (``conversations``),
the ticket view (``tickets``), saved replies (``saved``) and the page itself (plain HTML/CSS/JS
in ``bots/web/static/agent/``). docs/agent-workspace.md describes it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse

from bots.web.agent.auth import Workspace, auth_router
from bots.web.agent.board import HandoffBoard
from bots.web.agent.conversations import conversations_router
from bots.web.agent.inbox import inbox_router
from bots.web.agent.notices import HandoffNotices
from bots.web.agent.people import people_router
from bots.web.agent.saved import saved_router
from bots.web.agent.tickets import tickets_router

_FILES = {
    "agent.js": "text/javascript; charset=utf-8",
    "agent.css": "text/css; charset=utf-8",
}


def _page_router(static_dir: Path) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/agent")
    async def page() -> FileResponse:
        return FileResponse(static_dir / "index.html", media_type="text/html; charset=utf-8")

    for name, media_type in _FILES.items():

        async def asset(path: Path = static_dir / name, kind: str = media_type) -> FileResponse:
            return FileResponse(path, media_type=kind)

        router.add_api_route(f"/agent/{name}", asset, methods=["GET"])
    return router


def add_agent_workspace(app: FastAPI, static_dir: Path) -> Workspace:
    """Mount the workspace on ``app`` (built by ``create_gateway_app``); return it."""
    gateway = app.state.gateway
    workspace = Workspace(gateway)
    workspace.board = HandoffBoard(gateway.bus)
    gateway.workspace = workspace
    gateway.on_start.append(lambda: workspace.sessions.open_shared(gateway.bus))
    gateway.on_start.append(workspace.board.start)
    gateway.on_stop.append(workspace.board.stop)
    notices = HandoffNotices(gateway.bus, workspace.board)
    workspace.notices = notices
    gateway.on_start.append(notices.start)
    gateway.on_stop.append(notices.stop)
    for router in (
        auth_router(),
        inbox_router(),
        conversations_router(),
        tickets_router(),
        saved_router(),
        people_router(),
        _page_router(static_dir / "agent"),
    ):
        app.include_router(router)
    return workspace
