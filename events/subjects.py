"""Every subject, stream, consumer, bucket name of Frontdoor — defined here and nowhere else.

Subjects:
- ``fd.intent.<service>.<action>``                 -> stream ``FD_INTENTS`` (work queue)
- ``fd.event.<channel>.<conversation>.<type...>``  -> stream ``FD_EVENTS`` (the ordered bus)
- ``fd.dead.<service>.<action>``                   -> stream ``FD_DEAD`` (intents given up on)
- ``fd.svc.<service>.<action>``                    request/reply (NATS micro services)

Putting the conversation before the (variable-depth) type lets one filter select a type for all
conversations (``fd.event.*.*.reply``) or everything of one conversation
(``fd.event.web.<conv>.>``). Conversation ids may contain ``.``, ``*``, ``>`` or spaces (a Slack
thread ts has a dot), so they are encoded with ``encode_token`` first.
"""

from __future__ import annotations

import re
from typing import Final

INTENT_STREAM: Final = "FD_INTENTS"
EVENT_STREAM: Final = "FD_EVENTS"
DEAD_STREAM: Final = "FD_DEAD"
INTENT_PREFIX: Final = "fd.intent"
EVENT_PREFIX: Final = "fd.event"
DEAD_PREFIX: Final = "fd.dead"
#: Request/reply doors of the services: ``fd.svc.<service>.<action>`` (NATS micro services).
SERVICE_PREFIX: Final = "fd.svc"

#: Dialogue state per conversation (any front-door replica can continue any conversation).
CONVERSATIONS_BUCKET: Final = "fd_conversations"
#: Published NLU model artifacts (object store) and the pointer to the current one (KV).
MODELS_BUCKET: Final = "fd_models"
MODELS_POINTER_BUCKET: Final = "fd_model_pointer"
#: Durable positions of ordered readers (e.g. the reply router's last delivered sequence).
CURSORS_BUCKET: Final = "fd_cursors"
#: PNG charts rendered by the analysis service (object store; any instance serves them).
CHARTS_BUCKET: Final = "fd_charts"
#: Slack event ids already taken (retries of the same event are processed once), with a TTL.
SLACK_SEEN_BUCKET: Final = "fd_slack_seen"
#: Slack threads the bot answers in without a mention (entries expire after a quiet period).
SLACK_THREADS_BUCKET: Final = "fd_slack_threads"
#: REST replies handed out (by their call, or late), so several gateways hand each out once.
DELIVERED_BUCKET: Final = "fd_delivered"
#: Human hand-offs: conversation <-> Slack support thread, and who owns the conversation.
HANDOFFS_BUCKET: Final = "fd_handoffs"
#: Rate-limit counters shared by every gateway replica (``events.counters``).
LIMITS_BUCKET: Final = "fd_limits"
#: The agent workspace's shared settings (its saved replies).
WORKSPACE_BUCKET: Final = "fd_workspace"
#: Agent sessions signed out before they expired, shared by every gateway replica (TTL a day).
AGENT_SIGNOUTS_BUCKET: Final = "fd_agent_signouts"
#: Typing indicators (core NATS, never stored): ``fd.typing.<channel>.<conversation>.<who>``.
TYPING_PREFIX: Final = "fd.typing"
#: Ticket number -> the requester's conversation (where ticket notices go), with a TTL.
TICKET_CONVERSATIONS_BUCKET: Final = "fd_ticket_conversations"

#: Durable consumers on ``FD_EVENTS`` shared by every gateway replica (``Bus.follow``).
TICKET_NOTICES_CONSUMER: Final = "gw_ticket_notices"
TICKET_EMAILS_CONSUMER: Final = "gw_ticket_emails"
#: What users hear about their hand-offs while the agent workspace is on (``bots.web.agent``).
HANDOFF_NOTICES_CONSUMER: Final = "gw_handoff_notices"

#: Seconds within which a re-published envelope id is dropped (Slack retries for ~5 minutes).
DUPLICATE_WINDOW_SECONDS: Final = 15 * 60

_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def encode_token(raw: str) -> str:
    """Encode any string as one safe subject token, reversibly.

    Letters, digits, ``_`` and ``-`` are kept; every other byte becomes ``~XX`` (hex), so
    ``1700000000.123`` becomes ``1700000000~2E123`` and no id can inject ``.``, ``*`` or ``>``.
    """
    if not raw:
        raise ValueError("a subject token cannot be empty")
    if _SAFE.match(raw):
        return raw
    out: list[str] = []
    for ch in raw:
        if ch.isascii() and (ch.isalnum() or ch in "_-"):
            out.append(ch)
        else:
            out.extend(f"~{b:02X}" for b in ch.encode())
    return "".join(out)


def decode_token(token: str) -> str:
    """Invert ``encode_token``."""
    if "~" not in token:
        return token
    data = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "~":
            data.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            data.extend(token[i].encode())
            i += 1
    return data.decode()


def _check_name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"invalid {kind} name {value!r}: use lower-case letters, digits, _ and -")
    return value


def intent_type(service: str, action: str) -> str:
    """Envelope type of an intent: ``intent.<service>.<action>``."""
    return f"intent.{_check_name('service', service)}.{_check_name('action', action)}"


def intent_subject(service: str, action: str) -> str:
    """Subject of an intent for ``service``/``action``."""
    return f"{INTENT_PREFIX}.{_check_name('service', service)}.{_check_name('action', action)}"


def parse_intent_type(envelope_type: str) -> tuple[str, str] | None:
    """``intent.<service>.<action>`` -> ``(service, action)``; ``None`` for other types."""
    parts = envelope_type.split(".")
    if len(parts) == 3 and parts[0] == "intent":
        return parts[1], parts[2]
    return None


def service_intents_filter(service: str) -> str:
    """Filter of one service's intent consumer."""
    return f"{INTENT_PREFIX}.{_check_name('service', service)}.>"


def service_consumer(service: str) -> str:
    """Durable consumer name shared by every instance of ``service``."""
    return f"svc_{_check_name('service', service)}"


def dead_subject(service: str, action: str) -> str:
    """Subject of a dead letter of ``service``/``action`` (the intent, given up on)."""
    return f"{DEAD_PREFIX}.{service}.{action}"


def event_subject(channel: str, conversation_id: str, envelope_type: str) -> str:
    """Subject of an event of ``envelope_type`` in a conversation."""
    return f"{EVENT_PREFIX}.{channel}.{encode_token(conversation_id)}.{envelope_type}"


def events_filter(
    *, channel: str = "*", conversation_id: str | None = None, envelope_type: str | None = None
) -> str:
    """A filter over ``FD_EVENTS``: by channel, conversation and/or type (``None`` = any)."""
    conv = encode_token(conversation_id) if conversation_id is not None else "*"
    kind = envelope_type if envelope_type is not None else ">"
    return f"{EVENT_PREFIX}.{channel}.{conv}.{kind}"


def typing_subject(channel: str, conversation_id: str, who: str) -> str:
    """Core NATS subject of a typing signal in a conversation; ``who`` is ``agent`` or
    ``user`` (typing is ephemeral: it is never stored in a stream)."""
    return f"{TYPING_PREFIX}.{channel}.{encode_token(conversation_id)}.{_check_name('who', who)}"


ALL_EVENTS: Final = f"{EVENT_PREFIX}.>"
ALL_INTENTS: Final = f"{INTENT_PREFIX}.>"
ALL_DEAD: Final = f"{DEAD_PREFIX}.>"
