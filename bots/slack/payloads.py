"""What a signed Slack request may carry, checked with pydantic before Bolt sees it.

Slack's signature proves who sent a request, not that its body has the shape Slack documents:
a body that is an array, ``null`` or a string, an ``event`` that is not an object, a ``user``
that is a number would otherwise reach the channel's handlers. ``check_slack_body`` refuses
them (``InvalidSlackBody`` with the reason, a 400); unknown fields are allowed, Slack adds
them all the time. Texts follow the edge's text rule (``bots.web.text``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bots.web.errors import field_errors
from bots.web.jsonbody import parse_json
from bots.web.text import EdgeText
from events.errors import FrontdoorError

_ID = Field(default=None, max_length=255)


class InvalidSlackBody(FrontdoorError):
    """A signed Slack request whose body is not what Slack sends."""


class _Open(BaseModel):
    """Unknown fields allowed; known ones may be left out, but are never ``null`` (Slack never
    sends that, and Bolt's middleware breaks on it)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k in cls.model_fields if k in data and data[k] is None]
            if nulls:
                raise ValueError(f"{', '.join(nulls)} must not be null")
        return data


class SlackEvent(_Open):
    """An Events API ``event`` (the fields the channel reads)."""

    type: str | None = Field(default=None, max_length=64)
    user: str | None = _ID
    text: EdgeText | None = Field(default=None, max_length=40_000)
    channel: str | None = _ID
    channel_type: str | None = _ID
    ts: str | None = _ID
    thread_ts: str | None = _ID
    bot_id: str | None = _ID
    subtype: str | None = _ID
    team: str | None = _ID


class SlackEventsBody(_Open):
    """An Events API request: a callback, a URL verification, ..."""

    type: str = Field(max_length=64)
    event: SlackEvent | None = None
    event_id: str | None = _ID
    team_id: str | None = _ID
    challenge: str | None = Field(default=None, max_length=1024)


class SlackId(_Open):
    """``{"id": ...}`` objects (user, channel, team)."""

    id: str = Field(max_length=255)
    username: str | None = _ID
    name: str | None = _ID


class SlackAction(_Open):
    """One pressed button."""

    action_id: str | None = _ID
    value: EdgeText | None = Field(default=None, max_length=2000)
    action_ts: str | None = _ID


class SlackInteraction(_Open):
    """An interactivity payload (``payload=`` form field)."""

    type: str = Field(max_length=64)
    user: SlackId | None = None
    channel: SlackId | None = None
    team: SlackId | None = None
    container: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    actions: list[SlackAction] | None = None


class SlackCommand(_Open):
    """A slash command (form fields)."""

    command: str = Field(max_length=64)
    text: EdgeText = Field(default="", max_length=4000)
    user_id: str = Field(max_length=255)
    channel_id: str = Field(max_length=255)


def _validate(model: type[BaseModel], data: Any) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
            for e in field_errors(exc.errors())
        )
        raise InvalidSlackBody(f"not a Slack request body: {reasons}") from None


def check_slack_body(body: bytes, content_type: str, max_depth: int) -> None:
    """``InvalidSlackBody`` unless ``body`` is an Events API, command or interactivity body."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media == "application/x-www-form-urlencoded":
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
            if "payload" in form:
                _validate(SlackInteraction, parse_json(form["payload"], max_depth))
            elif "command" in form:
                _validate(SlackCommand, form)
            else:
                raise InvalidSlackBody("not a Slack request body: no payload and no command")
            return
        _validate(SlackEventsBody, parse_json(body, max_depth))
    except (ValueError, json.JSONDecodeError) as exc:
        if isinstance(exc, InvalidSlackBody):
            raise
        raise InvalidSlackBody(f"not a Slack request body: {type(exc).__name__}") from None
