"""Saved replies: one small list the workspace's agents share, in the KV bucket
``fd_workspace`` (so every gateway replica serves the same list)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from bots.web.agent.auth import workspace_of
from bots.web.errors import answers
from bots.web.text import EdgeText
from events import subjects

KEY = "saved_replies"


class SavedReply(BaseModel):
    """A title to pick it by and the text it inserts."""

    model_config = ConfigDict(extra="forbid")

    title: EdgeText = Field(min_length=1, max_length=80)
    text: EdgeText = Field(min_length=1, max_length=4000)


class SavedReplies(BaseModel):
    """The whole list (it is replaced at once)."""

    model_config = ConfigDict(extra="forbid")

    replies: list[SavedReply] = Field(default_factory=list, max_length=50)


async def _load(request: Request) -> SavedReplies:
    kv = await request.app.state.gateway.bus.key_value(subjects.WORKSPACE_BUCKET)
    try:
        entry = await kv.get(KEY)
    except Exception:  # no list saved yet
        return SavedReplies()
    return SavedReplies.model_validate_json(entry.value or b"{}")


def saved_router() -> APIRouter:
    """``GET``/``PUT /agent/api/saved-replies``."""
    router = APIRouter(prefix="/agent/api", tags=["agent workspace"])

    @router.get(
        "/saved-replies", summary="The saved replies", responses=answers(401, 403, 429, 500)
    )
    async def saved(request: Request) -> Any:
        await workspace_of(request).agent(request)
        return await _load(request)

    @router.put(
        "/saved-replies",
        summary="Replace the saved replies",
        responses=answers(401, 403, 413, 422, 429, 500),
    )
    async def save(request: Request, body: SavedReplies) -> Any:
        await workspace_of(request).agent(request, change=True)
        kv = await request.app.state.gateway.bus.key_value(subjects.WORKSPACE_BUCKET)
        await kv.put(KEY, body.model_dump_json().encode())
        return body

    return router
