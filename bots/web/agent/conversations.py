"""A handed-off conversation in the workspace: transcript, claim, reply, typing, notes, end.

Everything goes through the bus, so the widget, REST, Slack and every gateway replica see the
same thing in the same order:

- the transcript is the conversation's events (``bots.transcripts``); the live view streams
  them (Server-Sent Events) from a bus position, with typing signals (core NATS) in between;
- a reply is a ``reply`` envelope on the user's conversation marked as a support agent's
  (``service="handoff"``, as the Slack mirror's), plus ``handoff.agent_replied`` for the Slack
  thread; a note is ``handoff.note``, which no user channel delivers;
- claim is ``handoff.claimed``; hand back and close are ``handoff.ended`` (closing may solve a
  ticket first, so the user's rating goes to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bots.handoff import (
    HANDOFF_AGENT_REPLIED,
    HANDOFF_CLAIMED,
    HANDOFF_ENDED,
    HANDOFF_NOTE,
    HandoffAgentReplied,
    HandoffClaimed,
    HandoffEnded,
    HandoffNote,
)
from bots.transcripts import entry_of, read_transcript, render_text
from bots.web.agent import calls
from bots.web.agent.auth import STAFF_ROLES, Agent, Workspace, workspace_of
from bots.web.agent.board import HandedOff
from bots.web.agent.inbox import KEEPALIVE_SECONDS, SSE_HEADERS, sse
from bots.web.errors import answers
from bots.web.text import EdgeText
from events.envelope import Envelope
from events.payloads import Reply
from events.subjects import events_filter, typing_subject

if TYPE_CHECKING:
    from bots.web.app import Gateway

#: Namespace of the ids of agents' replies (a retried reply with the same client id is one).
_NS = uuid.UUID("5d6e0f3a-8b7c-4e21-9a0d-3c1b2f4e5a67")


class Say(BaseModel):
    """A reply or a note."""

    model_config = ConfigDict(extra="forbid")

    text: EdgeText = Field(min_length=1, max_length=4000)
    client_id: EdgeText | None = Field(default=None, min_length=1, max_length=128)


class Claim(BaseModel):
    """Claim the conversation (``agent`` empty) or assign it to another agent (a handle)."""

    model_config = ConfigDict(extra="forbid")

    agent: EdgeText | None = Field(default=None, min_length=1, max_length=64)


class Close(BaseModel):
    """Close the conversation; with ``solve_ticket``, that ticket is solved first (the user's
    rating then goes to it)."""

    model_config = ConfigDict(extra="forbid")

    solve_ticket: int | None = Field(default=None, ge=1, le=2**31 - 1)


class Typing(BaseModel):
    """The agent is typing (send it every few seconds while they do)."""

    model_config = ConfigDict(extra="forbid")

    active: bool = True


def _handoff(workspace: Workspace, ref: str, *, active: bool = False) -> HandedOff:
    item = workspace.board.get(ref)
    if item is None:
        raise HTTPException(404, detail="no hand-off of that conversation")
    if active and item.state == "ended":
        raise HTTPException(409, detail="this hand-off has ended; the user will not see this")
    return item


def _event(item: HandedOff, agent: Agent, kind: str, payload: BaseModel, **extra: Any) -> Envelope:
    return Envelope.new(
        kind,
        payload,
        conversation=item.conversation,
        actor=agent.actor,
        correlation_id=item.started_id,
        **extra,
    )


async def _claim(gateway: Gateway, item: HandedOff, agent: Agent, target: str | None) -> Envelope:
    """``handoff.claimed`` for ``agent`` or for ``target`` (who must be staff)."""
    who, name, by = agent.actor.id, agent.display, None
    if target and target.lower() != agent.handle:
        actor = await gateway.roles.resolve(f"user:{target.lower()}")
        if not STAFF_ROLES & set(actor.roles):
            raise HTTPException(422, detail=f"{target} is not an agent")
        who, name, by = actor.id, target.lower(), agent.actor.id
    env = _event(item, agent, HANDOFF_CLAIMED, HandoffClaimed(agent=who, name=name, by=by))
    await gateway.bus.publish(env)
    return env


async def _stream(request: Request, item: HandedOff, since: int) -> AsyncIterator[bytes]:
    """The conversation's transcript entries after ``since``, live, with typing signals."""
    gateway: Gateway = request.app.state.gateway
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(10_000)
    conv = item.conversation

    async def follow() -> None:
        subject = events_filter(channel=conv.channel, conversation_id=conv.id)
        async for seq, env in gateway.bus.tail(subject, since + 1):
            if env.conversation.thread != conv.thread:
                continue
            entry = entry_of(seq, env)
            if entry is not None:
                await queue.put(("entry", entry.model_dump(mode="json")))

    async def typing(data: bytes) -> None:
        with contextlib.suppress(ValueError, asyncio.QueueFull):
            queue.put_nowait(("typing", json.loads(data)))

    task = asyncio.create_task(follow(), name=f"agent-conversation-{item.ref}")
    sub = await gateway.bus.subscribe_core(
        typing_subject(conv.channel, conv.id, "user").rsplit(".", 1)[0] + ".*", typing
    )
    try:
        yield sse("hello", {"since": since, "conversation": item.out()})
        while True:
            try:
                kind, data = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                if task.done() or await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
                continue
            yield sse(kind, data)
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def conversations_router() -> APIRouter:
    """The conversation view's routes."""
    router = APIRouter(prefix="/agent/api/conversations/{ref}", tags=["agent workspace"])

    @router.get(
        "",
        summary="A handed-off conversation: its state and whole transcript",
        responses=answers(401, 403, 404, 429, 500),
    )
    async def conversation(request: Request, ref: str) -> dict[str, Any]:
        workspace = workspace_of(request)
        await workspace.agent(request)
        item = _handoff(workspace, ref)
        entries = await read_transcript(workspace.gateway.bus, item.conversation)
        return {
            "conversation": item.out(),
            "tickets": item.tickets,
            "entries": [e.model_dump(mode="json") for e in entries],
        }

    @router.get(
        "/export",
        summary="The whole transcript as a download (JSON or plain text)",
        response_class=Response,
        responses=answers(401, 403, 404, 422, 429, 500),
    )
    async def export(
        request: Request, ref: str, format: Literal["json", "text"] = "json"
    ) -> Response:
        workspace = workspace_of(request)
        await workspace.agent(request)
        item = _handoff(workspace, ref)
        entries = await read_transcript(workspace.gateway.bus, item.conversation)
        name = f"transcript-{item.conversation.channel}-{ref[:16]}"
        if format == "text":
            return PlainTextResponse(
                render_text(item.conversation, entries),
                headers={"Content-Disposition": f'attachment; filename="{name}.txt"'},
            )
        body = {
            "conversation": item.conversation.model_dump(mode="json", exclude_none=True),
            "entries": [e.model_dump(mode="json") for e in entries],
        }
        return JSONResponse(
            body, headers={"Content-Disposition": f'attachment; filename="{name}.json"'}
        )

    @router.get(
        "/stream",
        summary="The transcript after `since`, live (Server-Sent Events: entry, typing)",
        response_class=StreamingResponse,
        responses=answers(401, 403, 404, 429, 500),
    )
    async def stream(
        request: Request, ref: str, since: int = Query(default=0, ge=0, le=2**63 - 2)
    ) -> StreamingResponse:
        workspace = workspace_of(request)
        await workspace.agent(request)
        item = _handoff(workspace, ref)
        return StreamingResponse(
            _stream(request, item, since), media_type="text/event-stream", headers=SSE_HEADERS
        )

    @router.post(
        "/claim",
        summary="Claim the conversation, or assign it to another agent",
        responses=answers(401, 403, 404, 409, 422, 429, 500),
    )
    async def claim(request: Request, ref: str, body: Claim) -> dict[str, Any]:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=True)
        item = _handoff(workspace, ref, active=True)
        env = await _claim(workspace.gateway, item, agent, body.agent)
        return {"id": str(env.id), "agent": env.payload.get("agent")}

    @router.post(
        "/reply",
        summary="Answer the user (shown as a support agent's message, in order)",
        responses=answers(401, 403, 404, 409, 422, 429, 500),
    )
    async def reply(request: Request, ref: str, body: Say) -> dict[str, Any]:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=True)
        item = _handoff(workspace, ref, active=True)
        gateway = workspace.gateway
        if item.state == "waiting":
            await _claim(gateway, item, agent, None)  # whoever answers first owns it
        reply_id = (
            uuid.uuid5(_NS, f"{agent.actor.id}:{item.ref}:{body.client_id}")
            if body.client_id
            else uuid.uuid4()
        )
        answer = _event(
            item,
            agent,
            "reply",
            Reply(
                text=body.text,
                service="handoff",
                action="agent_message",
                data={"agent": agent.display},
            ),
            id=reply_id,
        )
        seq = await gateway.bus.publish(answer)
        copy = HandoffAgentReplied(
            text=body.text, agent=agent.actor.id, name=agent.display, reply_id=reply_id
        )
        await gateway.bus.publish(
            _event(item, agent, HANDOFF_AGENT_REPLIED, copy, id=uuid.uuid5(reply_id, "copy"))
        )
        return {"id": str(reply_id), "seq": seq}

    @router.post(
        "/note",
        summary="A private note (agents only; never delivered to the user)",
        responses=answers(401, 403, 404, 422, 429, 500),
    )
    async def note(request: Request, ref: str, body: Say) -> dict[str, Any]:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=True)
        item = _handoff(workspace, ref)
        env = _event(
            item,
            agent,
            HANDOFF_NOTE,
            HandoffNote(text=body.text, author=agent.actor.id, name=agent.display),
        )
        seq = await workspace.gateway.bus.publish(env)
        return {"id": str(env.id), "seq": seq}

    @router.post(
        "/typing",
        status_code=204,
        summary="The agent is typing (the user's widget shows it)",
        responses=answers(401, 403, 404, 422, 429, 500),
    )
    async def typing(request: Request, ref: str, body: Typing) -> None:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=True)
        conv = _handoff(workspace, ref, active=True).conversation
        signal = {"active": body.active, "who": "agent", "name": agent.display}
        await workspace.gateway.bus.publish_core(
            typing_subject(conv.channel, conv.id, "agent"), json.dumps(signal).encode()
        )

    @router.post(
        "/handback",
        summary="Give the conversation back to the bot",
        responses=answers(401, 403, 404, 409, 429, 500),
    )
    async def handback(request: Request, ref: str) -> dict[str, Any]:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=True)
        item = _handoff(workspace, ref, active=True)
        ended = HandoffEnded(by=agent.actor.id, outcome="handback")
        env = _event(item, agent, HANDOFF_ENDED, ended, id=uuid.uuid5(item.started_id, "ended"))
        return {"id": str(env.id), "seq": await workspace.gateway.bus.publish(env)}

    @router.post(
        "/close",
        summary="Close the conversation (the user is asked for a 1-5 rating)",
        responses=answers(401, 403, 404, 409, 422, 429, 500, 502, 503),
    )
    async def close(request: Request, ref: str, body: Close) -> dict[str, Any]:
        workspace = workspace_of(request)
        agent = await workspace.agent(request, change=True)
        item = _handoff(workspace, ref, active=True)
        if body.solve_ticket is not None:
            ticket = await calls.management(
                workspace.gateway, agent, "ticket_get", {"ticket": body.solve_ticket}
            )
            if ticket.get("status") not in ("solved", "closed"):
                await calls.management(
                    workspace.gateway,
                    agent,
                    "ticket_update",
                    {"ticket": body.solve_ticket, "status": "solved", "note": "chat closed"},
                )
        ended = HandoffEnded(by=agent.actor.id, outcome="closed", ticket=body.solve_ticket)
        env = _event(item, agent, HANDOFF_ENDED, ended, id=uuid.uuid5(item.started_id, "ended"))
        return {"id": str(env.id), "seq": await workspace.gateway.bus.publish(env)}

    return router
