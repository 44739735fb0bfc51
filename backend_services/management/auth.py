"""HTTP callers by API key: an ``ActorResolver`` for the runtime's HTTP door.

``Authorization: Bearer <key>`` is resolved by asking management's ``resolve_actor`` over NATS
(so the HTTP app and the management service may run in different processes). Unknown or revoked
keys get 401; without a key, 401 too unless ``allow_anonymous`` (then a plain ``user``).
"""

from __future__ import annotations

import json

from fastapi import HTTPException, Request

from backend_services.runtime import ActorResolver
from events.bus import Bus
from events.envelope import Actor
from events.errors import BusUnavailable
from events.micro import micro_subject
from events.payloads import Reply

ANONYMOUS = Actor(id="anonymous", roles=("user",))


def api_key_resolver(
    bus: Bus, *, allow_anonymous: bool = False, timeout: float = 5.0
) -> ActorResolver:
    """A resolver that turns a bearer API key into the key owner's ``Actor``."""

    async def resolve(request: Request) -> Actor:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            if allow_anonymous:
                return ANONYMOUS
            raise HTTPException(
                401,
                detail="An API key is required: send 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = json.dumps({"channel": "api", "identity": key}).encode()
        try:
            raw = await bus.request(micro_subject("management", "resolve_actor"), body, timeout)
        except BusUnavailable as exc:
            raise HTTPException(503, detail="The management service is not answering.") from exc
        reply = Reply.model_validate_json(raw)
        data = reply.data or {}
        if reply.status != "ok" or not data.get("known"):
            raise HTTPException(
                401, detail="Unknown or revoked API key.", headers={"WWW-Authenticate": "Bearer"}
            )
        return Actor(
            id=str(data["actor_id"]),
            name=data.get("name") or data.get("user"),
            roles=tuple(data.get("roles") or ("user",)),
        )

    return resolve
