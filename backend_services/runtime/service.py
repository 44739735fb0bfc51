"""Declaring a service: typed handlers (pydantic in, pydantic out), roles, start/stop hooks."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel

from backend_services.runtime.context import HandlerContext, ServiceContext

HandlerFn = Callable[[Any, HandlerContext], Awaitable[BaseModel]]
Hook = Callable[[ServiceContext], Awaitable[None]]

_ACTION = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class HandlerSpec:
    """One action of a service: its models, roles and function."""

    action: str
    fn: HandlerFn
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    roles: frozenset[str] | None
    summary: str
    #: for other components only (e.g. the gateway's ``resolve_actor``): never on a public door
    internal: bool = False


@dataclass
class Service:
    """A service: a name, its handlers and lifecycle hooks. Served by ``ServiceRunner``."""

    name: str
    version: str = "0.1.0"
    description: str = ""
    handlers: dict[str, HandlerSpec] = field(default_factory=dict)
    startup_hooks: list[Hook] = field(default_factory=list)
    shutdown_hooks: list[Hook] = field(default_factory=list)

    def handler(
        self,
        action: str,
        *,
        roles: set[str] | None = None,
        summary: str = "",
        internal: bool = False,
    ) -> Callable[[HandlerFn], HandlerFn]:
        """Declare ``fn(payload: InModel, ctx: HandlerContext) -> OutModel`` as ``action``.

        ``roles=None`` lets any verified caller (guests included) call it; otherwise the actor
        needs one of ``roles``. ``internal`` actions serve other components: no HTTP route, no
        headless-API access, and no intent (chat) door; they answer only signed requests.
        """
        if not _ACTION.match(action):
            raise ValueError(f"invalid action name {action!r}: use lower-case letters, digits, _")

        def register(fn: HandlerFn) -> HandlerFn:
            hints = get_type_hints(fn)
            params = list(inspect.signature(fn).parameters)
            input_model = hints.get(params[0]) if params else None
            output_model = hints.get("return")
            if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
                raise TypeError(f"{self.name}.{action}: first parameter must be a pydantic model")
            if not (isinstance(output_model, type) and issubclass(output_model, BaseModel)):
                raise TypeError(f"{self.name}.{action}: return type must be a pydantic model")
            if action in self.handlers:
                raise ValueError(f"{self.name}.{action} is declared twice")
            self.handlers[action] = HandlerSpec(
                action=action,
                fn=fn,
                input_model=input_model,
                output_model=output_model,
                roles=frozenset(roles) if roles is not None else None,
                summary=summary or (fn.__doc__ or "").strip().split("\n")[0],
                internal=internal,
            )
            return fn

        return register

    def public_handlers(self) -> dict[str, HandlerSpec]:
        """The actions callers may reach from outside (every door but internal requests)."""
        return {name: spec for name, spec in self.handlers.items() if not spec.internal}

    def on_startup(self, fn: Hook) -> Hook:
        """Run ``fn(ctx)`` when a runner starts (open databases, fill ``ctx.state``)."""
        self.startup_hooks.append(fn)
        return fn

    def on_shutdown(self, fn: Hook) -> Hook:
        """Run ``fn(ctx)`` when a runner stops."""
        self.shutdown_hooks.append(fn)
        return fn
