"""Human hand-off on Slack: mirror a conversation a human owns into a support-channel thread.

The turn pipeline publishes the hand-off events (``bots.handoff``) on the user's conversation;
this mirror follows them in bus order:

- ``handoff.started`` -> a first message in ``FRONTDOOR_SUPPORT_CHANNEL`` summarising the
  conversation (user, bot, ticket numbers, the last messages) with "Hand back" / "Close"
  buttons; the mapping conversation <-> thread is stored in NATS KV (``HANDOFFS_BUCKET``).
- ``handoff.user_message`` -> the user's words posted in that thread.
- ``ticket.created`` in a mirrored conversation -> a note in the thread.
- ``handoff.ended`` -> a note in the thread, a message to the user, the mapping closed.

What an agent writes in the thread becomes a ``reply`` on the user's conversation (the reply
router delivers it to the widget or wherever the user is); ``!handback`` / ``!close`` (or the
buttons) publish ``handoff.ended``.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Literal

from cachetools import TTLCache
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.handoff import (
    HANDOFF_AGENT_REPLIED,
    HANDOFF_CLAIMED,
    HANDOFF_ENDED,
    HANDOFF_FILTER,
    HANDOFF_NOTE,
    HANDOFF_STARTED,
    HANDOFF_USER_MESSAGE,
    HandoffAgentReplied,
    HandoffClaimed,
    HandoffEnded,
    HandoffNote,
    HandoffStarted,
    HandoffUserMessage,
    conversation_key,
    ended_notices,
    started_notices,
    unavailable_envelopes,
)
from bots.identity import SLACK_PREFIX
from bots.seen import SeenSet, kv_key
from events import subjects
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.payloads import Reply

from .format import escape, from_slack, to_mrkdwn
from .relay import CursorRelay

log = logging.getLogger("frontdoor.slack.handoff")

HANDOFF_ACTION = "fd_handoff"
HANDBACK_COMMANDS = {"!handback", "!back", "!bot"}
CLOSE_COMMANDS = {"!close", "!done"}
CLAIM_COMMANDS = {"!claim", "!mine"}
_NS = uuid.UUID("0b4f8a56-5c1e-4c4e-9e55-8f2f7d0d6a31")
_TRANSCRIPT_LINES = 12
_LINE_LIMIT = 300


class HandoffThread(BaseModel):
    """One mirrored conversation: where the user is and which Slack thread mirrors it."""

    model_config = ConfigDict(extra="ignore")

    conversation: Conversation
    user: Actor
    slack_channel: str
    thread_ts: str
    started_id: uuid.UUID
    state: Literal["active", "ended"] = "active"
    tickets: list[int] = Field(default_factory=list)


class HandoffMirror:
    """Keeps the support-channel threads and the users' conversations in step."""

    def __init__(
        self,
        bus: Bus,
        client: AsyncWebClient,
        seen: SeenSet,
        support_channel: str | None,
        *,
        workspace: bool = False,
    ) -> None:
        self._bus = bus
        #: the agent workspace takes hand-offs too: without a support channel, do not decline
        self.workspace = workspace
        self._client = client
        self._seen = seen
        self.support_channel = support_channel
        self._kv: KeyValue | None = None
        #: Slack users' display names (bounded, refreshed hourly)
        self._names: TTLCache[str, str | None] = TTLCache(10_000, 3600.0)
        self._relays: list[CursorRelay] = []

    async def start(self) -> None:
        """Open the mapping bucket and follow the hand-off and ticket events."""
        self._kv = await self._bus.key_value(subjects.HANDOFFS_BUCKET)
        self._relays = [
            CursorRelay(
                self._bus,
                self._seen,
                name="slack_handoff",
                filter_subject=HANDOFF_FILTER,
                handler=self._on_handoff_event,
            ),
            CursorRelay(
                self._bus,
                self._seen,
                name="slack_handoff_tickets",
                filter_subject=subjects.events_filter(envelope_type="ticket.created"),
                handler=self._on_ticket_event,
            ),
        ]
        for relay in self._relays:
            await relay.start()

    async def stop(self) -> None:
        """Stop following the bus."""
        for relay in self._relays:
            await relay.stop()

    # -- the KV mapping -----------------------------------------------------------------------

    @staticmethod
    def _conv_key(conversation: Conversation) -> str:
        return "conv." + kv_key(*conversation_key(conversation))

    @staticmethod
    def _thread_key(channel: str, thread_ts: str) -> str:
        return "thread." + kv_key(channel, thread_ts)

    async def _load(self, key: str) -> HandoffThread | None:
        assert self._kv is not None
        try:
            entry = await self._kv.get(key)
        except Exception:  # missing key (or deleted)
            return None
        if not entry.value:
            return None
        return HandoffThread.model_validate_json(entry.value)

    async def _save(self, record: HandoffThread) -> None:
        assert self._kv is not None
        data = record.model_dump_json().encode()
        await self._kv.put(self._conv_key(record.conversation), data)
        await self._kv.put(self._thread_key(record.slack_channel, record.thread_ts), data)

    async def for_conversation(self, conversation: Conversation) -> HandoffThread | None:
        """The mirror of ``conversation`` (active or ended), if any."""
        return await self._load(self._conv_key(conversation))

    async def for_thread(self, channel: str, thread_ts: str) -> HandoffThread | None:
        """The conversation an agent's thread mirrors, if any."""
        return await self._load(self._thread_key(channel, thread_ts))

    # -- bus events -> Slack -------------------------------------------------------------------

    async def _on_handoff_event(self, seq: int, env: Envelope) -> None:
        if env.type == HANDOFF_STARTED:
            await self._started(seq, env)
        elif env.type == HANDOFF_USER_MESSAGE:
            await self._user_message(env)
        elif env.type == HANDOFF_ENDED:
            await self._ended(env)
        elif env.type in (HANDOFF_CLAIMED, HANDOFF_NOTE, HANDOFF_AGENT_REPLIED):
            await self._from_workspace(env)

    async def _from_workspace(self, env: Envelope) -> None:
        """A claim (from the workspace or this thread), a private note or an answer made in the
        agent workspace, shown in the thread so both surfaces tell the same story."""
        record = await self.for_conversation(env.conversation)
        if record is None or record.state != "active":
            return
        if env.type == HANDOFF_CLAIMED:
            claimed = env.payload_as(HandoffClaimed)
            if claimed.agent.startswith(SLACK_PREFIX):
                who = f"<@{claimed.agent.removeprefix(SLACK_PREFIX)}>"
                text = f":raising_hand: Claimed by {who}."
            else:
                text = f":raising_hand: Claimed by *{escape(claimed.name or claimed.agent)}*"
                text += " in the agent workspace."
        elif env.type == HANDOFF_NOTE:
            note = env.payload_as(HandoffNote)
            who = escape(note.name or note.author)
            text = f":lock: *Private note from {who}* (the user does not see it): "
            text += to_mrkdwn(note.text)
        else:
            said = env.payload_as(HandoffAgentReplied)
            who = escape(said.name or said.agent)
            text = f"*{who} (agent workspace):* {to_mrkdwn(said.text)}"
        await self._client.chat_postMessage(
            channel=record.slack_channel, thread_ts=record.thread_ts, text=text, unfurl_links=False
        )

    async def _started(self, seq: int, env: Envelope) -> None:
        existing = await self.for_conversation(env.conversation)
        if existing is not None and existing.state == "active":
            return  # already mirrored (a second "I want a human" in the same hand-off)
        started = env.payload_as(HandoffStarted)
        if not self.support_channel:
            if self.workspace:
                return  # the agent workspace takes it (and tells the user)
            log.warning("hand-off requested but FRONTDOOR_SUPPORT_CHANNEL is not set")
            for answer in unavailable_envelopes(env):
                await self._bus.publish(answer)
            return
        transcript, tickets = await self._history(env.conversation, seq)
        who = env.actor.name or env.actor.id
        conv = env.conversation
        ticket_text = ", ".join(f"#{n}" for n in tickets) or "none yet"
        summary = "\n".join(transcript) or "_(no earlier messages)_"
        title = f"Hand-off: {who} on {conv.channel} asks for a human"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*User*\n{escape(who)}"},
                    {"type": "mrkdwn", "text": f"*Bot*\n{escape(started.bot or conv.bot or '-')}"},
                    {"type": "mrkdwn", "text": f"*Ticket*\n{ticket_text}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Conversation*\n`{escape(conv.channel)}:{escape(conv.id)}`",
                    },
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": summary[:2900]}},
            {
                "type": "actions",
                "block_id": "fd_handoff",
                "elements": [
                    _button("Claim", "claim", "primary"),
                    _button("Hand back to the bot", "handback", None),
                    _button("Close", "close", "danger"),
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Reply in this thread to talk to the user. `!claim` takes it, "
                        "`!handback` gives the conversation back to the bot, `!close` ends it.",
                    }
                ],
            },
        ]
        posted = await self._client.chat_postMessage(
            channel=self.support_channel, text=title, blocks=blocks, unfurl_links=False
        )
        record = HandoffThread(
            conversation=conv,
            user=env.actor,
            slack_channel=str(posted["channel"]),
            thread_ts=str(posted["ts"]),
            started_id=env.id,
            tickets=tickets,
        )
        await self._save(record)
        for notice in started_notices(env):
            await self._bus.publish(notice)

    async def _user_message(self, env: Envelope) -> None:
        record = await self.for_conversation(env.conversation)
        if record is None or record.state != "active":
            log.warning("user message for a hand-off that is not mirrored (%s)", env.conversation)
            return
        said = env.payload_as(HandoffUserMessage)
        who = escape(env.actor.name or env.actor.id)
        await self._client.chat_postMessage(
            channel=record.slack_channel,
            thread_ts=record.thread_ts,
            text=f"*{who}:* {to_mrkdwn(said.text)}",
            unfurl_links=False,
        )

    async def _ended(self, env: Envelope) -> None:
        record = await self.for_conversation(env.conversation)
        ended = env.payload_as(HandoffEnded)
        if record is None or record.state != "active":
            return
        record = record.model_copy(update={"state": "ended"})
        await self._save(record)
        if ended.by and re.fullmatch(r"[UW][A-Z0-9]+", ended.by):
            by = f" by <@{ended.by}>"
        else:  # ended in the agent workspace (``user:<handle>``), or by nobody in particular
            by = f" by {escape(ended.by)} in the agent workspace" if ended.by else ""
        note = "closed" if ended.outcome == "closed" else "handed back to the bot"
        await self._client.chat_postMessage(
            channel=record.slack_channel,
            thread_ts=record.thread_ts,
            text=f":white_check_mark: Conversation {note}{by}.",
        )
        for notice in ended_notices(env):
            await self._bus.publish(notice)

    async def _on_ticket_event(self, _seq: int, env: Envelope) -> None:
        number = env.payload.get("number") if isinstance(env.payload, dict) else None
        if not isinstance(number, int):
            return
        record = await self.for_conversation(env.conversation)
        if record is None or record.state != "active" or number in record.tickets:
            return
        await self._save(record.model_copy(update={"tickets": [*record.tickets, number]}))
        await self._client.chat_postMessage(
            channel=record.slack_channel,
            thread_ts=record.thread_ts,
            text=f":ticket: Ticket #{number} was opened in this conversation.",
        )

    async def _history(
        self, conversation: Conversation, until_seq: int
    ) -> tuple[list[str], list[int]]:
        """The conversation's last lines and its ticket numbers, read from the bus."""
        lines: list[str] = []
        tickets: list[int] = []
        filter_subject = subjects.events_filter(
            channel=conversation.channel, conversation_id=conversation.id
        )
        events = self._bus.tail(filter_subject, 1)
        try:
            async for seq, env in events:
                if env.conversation.thread == conversation.thread:
                    line, number = _describe(env)
                    if line:
                        lines.append(line)
                    if number is not None and number not in tickets:
                        tickets.append(number)
                if seq >= until_seq:
                    break
        finally:
            await events.aclose()  # type: ignore[attr-defined]  # an async generator
        return lines[-_TRANSCRIPT_LINES:], tickets

    # -- Slack -> the user ----------------------------------------------------------------------

    async def agent_message(
        self, record: HandoffThread, *, user_id: str, text: str, ts: str
    ) -> None:
        """An agent wrote in the thread: a command, or words for the user."""
        command = text.strip().lower()
        if command in CLAIM_COMMANDS:
            await self.claim(record, user_id=user_id, ts=ts)
            return
        if command in HANDBACK_COMMANDS or command in CLOSE_COMMANDS:
            outcome = "closed" if command in CLOSE_COMMANDS else "handback"
            await self.end(record, by=user_id, outcome=outcome)
            return
        if record.state != "active":
            await self._client.chat_postEphemeral(
                channel=record.slack_channel,
                user=user_id,
                thread_ts=record.thread_ts,
                text="This conversation was already handed back; the user will not see this.",
            )
            return
        agent = Actor(
            id=f"{SLACK_PREFIX}{user_id}", name=await self._name(user_id), roles=("agent",)
        )
        reply = Envelope.new(
            "reply",
            Reply(
                text=from_slack(text),
                service="handoff",
                action="agent_message",
                data={"agent": agent.name or agent.id},
            ),
            conversation=record.conversation,
            actor=agent,
            correlation_id=record.started_id,
            id=uuid.uuid5(_NS, f"agent:{record.slack_channel}:{ts}"),
        )
        await self._bus.publish(reply)

    async def claim(self, record: HandoffThread, *, user_id: str, ts: str) -> None:
        """A Slack agent takes the conversation: ``handoff.claimed``, the same event the agent
        workspace publishes (the thread and the workspace both show it)."""
        if record.state != "active":
            return
        agent = Actor(
            id=f"{SLACK_PREFIX}{user_id}", name=await self._name(user_id), roles=("agent",)
        )
        claimed = Envelope.new(
            HANDOFF_CLAIMED,
            HandoffClaimed(agent=agent.id, name=agent.name),
            conversation=record.conversation,
            actor=agent,
            correlation_id=record.started_id,
            id=uuid.uuid5(_NS, f"claim:{record.slack_channel}:{ts}"),
        )
        await self._bus.publish(claimed)

    async def end(self, record: HandoffThread, *, by: str, outcome: str) -> None:
        """Give the conversation back to the bot (``handback``) or close it."""
        if record.state != "active":
            return
        started = Envelope.new(
            HANDOFF_STARTED,
            {},
            conversation=record.conversation,
            actor=record.user,
            id=record.started_id,
        )
        await self._publish_end(started, record.conversation, by, outcome)

    async def _publish_end(
        self, cause: Envelope, conversation: Conversation, by: str | None, outcome: str
    ) -> None:
        ended = Envelope.new(
            HANDOFF_ENDED,
            HandoffEnded(by=by, outcome=outcome),  # type: ignore[arg-type]
            conversation=conversation,
            actor=Actor(id=f"{SLACK_PREFIX}{by}", roles=("agent",)) if by else cause.actor,
            correlation_id=cause.correlation_id,
            causation_id=cause.id,
            id=uuid.uuid5(cause.id, f"handoff.ended:{outcome}"),
        )
        await self._bus.publish(ended)

    async def _name(self, user_id: str) -> str | None:
        if user_id not in self._names:
            try:
                info = await self._client.users_info(user=user_id)
                user = info.get("user") or {}
                profile = user.get("profile") or {}
                self._names[user_id] = (
                    profile.get("display_name") or user.get("real_name") or user.get("name")
                ) or None
            except SlackApiError as exc:
                log.info("users.info %s failed: %s", user_id, exc.response.get("error"))
                self._names[user_id] = None
        return self._names.get(user_id)


def _button(text: str, value: str, style: str | None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{HANDOFF_ACTION}:{value}",
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }
    if style is not None:
        button["style"] = style
    return button


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _LINE_LIMIT else text[: _LINE_LIMIT - 1] + "…"


def _describe(env: Envelope) -> tuple[str | None, int | None]:
    """A transcript line for ``env`` and the ticket number it mentions (if any)."""
    if env.type == "message.received":
        who = escape(env.actor.name or "User")
        return f"*{who}:* {to_mrkdwn(_clip(str(env.payload.get('text', ''))))}", None
    if env.type == "reply":
        reply = env.payload_as(Reply)
        number = (reply.data or {}).get("number") if reply.service == "management" else None
        who = "Agent" if reply.service == "handoff" else "Bot"
        line = f"*{who}:* {to_mrkdwn(_clip(reply.text))}" if reply.text else None
        return line, number if isinstance(number, int) else None
    if env.type == "ticket.created":
        number = env.payload.get("number")
        return None, number if isinstance(number, int) else None
    return None, None
