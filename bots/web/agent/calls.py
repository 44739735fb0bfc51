"""The workspace's calls to management, each with the agent's own signed claim.

Services believe the claim and nothing else, so management enforces the agent's roles itself;
its answer becomes the HTTP answer (``ok`` 200, ``invalid`` 422, ``denied`` 403, else 502).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import HTTPException

from bots.web.agent.auth import Agent
from events.errors import BusUnavailable

if TYPE_CHECKING:
    from bots.web.app import Gateway

_STATUS = {"invalid": 422, "denied": 403}


async def management(gateway: Gateway, agent: Agent, action: str, payload: dict[str, Any]) -> Any:
    """Call management's ``action`` as ``agent``; its ``data`` (or an ``HTTPException``)."""
    try:
        reply = await gateway.services.call(
            "management",
            action,
            payload,
            agent.actor,
            conversation=("api", f"agent-{agent.handle}"),
        )
    except BusUnavailable:
        raise HTTPException(
            503, detail="management is not answering right now", headers={"Retry-After": "5"}
        ) from None
    if reply.status != "ok":
        status = _STATUS.get(reply.status, 502)
        if reply.text.startswith("There is no "):
            status = 404  # management's NotFound
        raise HTTPException(status, detail=reply.text)
    return reply.data or {}
