"""One call of a handler, the same for all three doors: roles, validation, the handler, a Reply."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from backend_services.runtime.context import HandlerContext, ServiceContext
from backend_services.runtime.errors import HandlerError
from backend_services.runtime.metrics import DURATION, HANDLED
from backend_services.runtime.service import HandlerSpec
from events.envelope import Envelope
from events.payloads import Button, Reply


@dataclass
class Outcome:
    """What a call produced: a reply to send, and the output model when it succeeded."""

    reply: Reply
    output: BaseModel | None = None


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as plain JSON-able dicts (location, message, type)."""
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _describe_errors(errors: list[dict[str, Any]]) -> str:
    parts = [f"{'.'.join(e['loc']) or 'request'}: {e['msg']}" for e in errors[:5]]
    return "; ".join(parts)


@functools.cache
def _class_defines(cls: type, name: str) -> bool:
    return any(name in vars(klass) for klass in cls.__mro__)


def _optional_attr(output: BaseModel, name: str) -> Any:
    """``getattr(output, name, None)`` without pydantic's slow path for a missing name.

    Looks in the model's fields, then its class (methods, properties), then its extras.
    """
    fields = output.__dict__
    if name in fields:
        return fields[name]
    if _class_defines(type(output), name):
        return getattr(output, name, None)
    extra = output.__pydantic_extra__
    return extra.get(name) if extra else None


def reply_from_output(spec: HandlerSpec, service: str, output: BaseModel) -> Reply:
    """The user-facing reply for a handler's output model."""
    text_fn = _optional_attr(output, "reply_text")
    text = text_fn() if callable(text_fn) else f"{service}.{spec.action} done."
    raw_buttons = _optional_attr(output, "buttons") or []
    buttons = [b if isinstance(b, Button) else Button.model_validate(b) for b in raw_buttons]
    image = _optional_attr(output, "image")
    return Reply(
        text=text,
        status="ok",
        service=service,
        action=spec.action,
        data=output.model_dump(mode="json"),
        buttons=buttons,
        image=image if isinstance(image, str) else None,
    )


async def invoke(
    spec: HandlerSpec,
    service: ServiceContext,
    envelope: Envelope,
    *,
    verified_email: str | None = None,
    door: Literal["intent", "request"] = "intent",
) -> Outcome:
    """Check roles, validate the payload and run the handler (counted and timed).

    ``envelope.actor`` must be the *verified* actor (the door checked the signed claim).
    Returns an ``Outcome`` for every expected result (ok, invalid, denied, domain error).
    Unexpected exceptions propagate: the door decides whether to retry.
    """
    started = time.perf_counter()
    status = "exception"
    try:
        outcome = await _invoke(spec, service, envelope, verified_email, door)
        status = outcome.reply.status
        return outcome
    finally:
        HANDLED.labels(service.service, spec.action, status).inc()
        DURATION.labels(service.service, spec.action).observe(time.perf_counter() - started)


async def _invoke(
    spec: HandlerSpec,
    service: ServiceContext,
    envelope: Envelope,
    verified_email: str | None,
    door: Literal["intent", "request"],
) -> Outcome:
    name = service.service
    if spec.roles is not None and not envelope.actor.has_any(spec.roles):
        needed = ", ".join(sorted(spec.roles))
        return Outcome(
            Reply(
                text=f"Sorry, {spec.action.replace('_', ' ')} needs one of the roles: {needed}.",
                status="denied",
                service=name,
                action=spec.action,
            )
        )
    try:
        payload = spec.input_model.model_validate(envelope.payload)
    except ValidationError as exc:
        errors = validation_errors(exc)
        return Outcome(
            Reply(
                text=f"That request is not valid: {_describe_errors(errors)}.",
                status="invalid",
                service=name,
                action=spec.action,
                errors=errors,
            )
        )
    ctx = HandlerContext(
        service=service,
        envelope=envelope,
        action=spec.action,
        verified_email=verified_email,
        door=door,
    )
    try:
        output = await spec.fn(payload, ctx)
    except HandlerError as exc:
        return Outcome(
            Reply(
                text=exc.message,
                status=exc.status,
                service=name,
                action=spec.action,
                errors=exc.errors,
            )
        )
    return Outcome(reply_from_output(spec, name, output), output)
