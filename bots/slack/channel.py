"""The Slack channel: a Bolt ``AsyncApp`` in front of the turn pipeline, and the reply adapter.

In: mentions in channels (``app_mention``), direct messages (``message`` im), follow-ups in a
thread the bot was mentioned in (``message``, no mention needed; ``FollowedThreads``), the
``/frontdoor`` slash command and quick-reply buttons (block actions) become turns of the
``TurnPipeline``;
messages in a hand-off thread of the support channel go to the user instead. Everything is
acknowledged at once (Bolt acks, the work runs after the HTTP answer). Each Slack event is taken
once: its ``event_id`` is claimed in a NATS KV seen-set (Slack retries for ~5 minutes), the
message key (channel + ts, shared by ``app_mention`` and ``message`` of the same message) too,
and the turn's envelope id derives from it so the bus drops a duplicate anyway.

Out: ``deliver`` posts replies from the reply router with ``chat.postMessage`` in the
conversation's channel and thread (``Retry-After`` respected on 429).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import TTLCache
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bots.identity import SLACK_PREFIX
from bots.router import DeliverLater
from bots.seen import SeenSet
from bots.tracking import ObservedReply
from bots.turns import IncomingMessage
from bots.web.text import BadText, clean_text
from events.bus import Bus

from .announce import AnnouncementRelay
from .client import PERMANENT_ERRORS, build_web_client
from .format import QUICK_REPLY_ACTION, escape, from_slack, reply_blocks, reply_text
from .handoff_mirror import HANDOFF_ACTION, HandoffMirror
from .settings import ResolvedSlack, SlackConfigError
from .threads import FollowedThreads

log = logging.getLogger("frontdoor.slack")

TurnHandler = Callable[[IncomingMessage], Awaitable[Any]]


class DeliveryBusy(DeliverLater):
    """Another replica holds the claim on this reply: the router tries again shortly."""


#: Message subtypes that are not a person saying something new.
_IGNORED_SUBTYPES = {
    "bot_message",
    "message_changed",
    "message_deleted",
    "message_replied",
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "group_join",
    "group_leave",
    "ekm_access_denied",
}
_RESPONSE_URL_TTL = 25 * 60.0
#: A user mention (``<@U123>``) in a message's text.
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_USAGE = (
    "Tell me what you need, e.g. `/frontdoor open a ticket` or `/frontdoor which services are up?`"
)


#: The message metadata type of every reply posted (its payload: the reply's envelope id).
REPLY_METADATA = "frontdoor_reply"


class SlackChannel:
    """Slack in and out. Build with ``SlackChannel(config, bus=..., turns=pipeline.handle)``."""

    def __init__(
        self,
        config: ResolvedSlack,
        *,
        bus: Bus,
        turns: TurnHandler,
        client: AsyncWebClient | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self._turns = turns
        self.client = client or build_web_client(config)
        self.bolt = AsyncApp(
            name="frontdoor",
            client=self.client,
            signing_secret=(
                config.signing_secret.get_secret_value() if config.signing_secret else ""
            ),
            # An event is acknowledged once its turn ran: a gateway that dies before then is
            # not acknowledged, so Slack delivers the event again (to another gateway).
            process_before_response=True,
            logger=logging.getLogger("frontdoor.slack.bolt"),
        )
        self.bot_user_id: str | None = None
        self._seen: SeenSet | None = None
        self.handoff: HandoffMirror | None = None
        #: the agent workspace (``/agent``) takes hand-offs too (set by ``attach_slack``)
        self.workspace = False
        self.announcements: AnnouncementRelay | None = None
        self.threads: FollowedThreads | None = None
        #: a slash command's response URL by channel, for as long as Slack accepts it
        self._response_urls: TTLCache[str, str] = TTLCache(10_000, _RESPONSE_URL_TTL)
        self._register()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the token, open the seen-set, start the hand-off mirror and announcements."""
        try:
            auth = await self.client.auth_test()
            self.bot_user_id = auth.get("user_id")
        except SlackApiError as exc:
            raise SlackConfigError(
                f"Slack rejected SLACK_BOT_TOKEN: {exc.response.get('error')}"
            ) from None
        except Exception as exc:  # Slack unreachable: Bolt retries auth.test on the first event
            log.warning("cannot reach Slack at %s yet (%s)", self.config.api_url, exc)
        self._seen = await SeenSet.open(self.bus, self.config.dedup_seconds)
        if self.config.thread_follow_seconds > 0:
            self.threads = await FollowedThreads.open(self.bus, self.config.thread_follow_seconds)
        self.handoff = HandoffMirror(
            self.bus,
            self.client,
            self._seen,
            self.config.support_channel,
            workspace=self.workspace,
        )
        await self.handoff.start()
        self.announcements = AnnouncementRelay(self.bus, self.client, self._seen)
        await self.announcements.start()

    async def stop(self) -> None:
        """Stop the relays."""
        if self.handoff:
            await self.handoff.stop()
        if self.announcements:
            await self.announcements.stop()

    @property
    def seen(self) -> SeenSet:
        """The seen-set (``start()`` opens it)."""
        if self._seen is None:
            raise RuntimeError("SlackChannel.start() was not awaited")
        return self._seen

    # -- replies out ----------------------------------------------------------------------------

    async def deliver(self, item: ObservedReply) -> None:
        """Post one reply in its channel and thread (the reply router's ``slack`` adapter).

        Transient failures raise (the router retries); permanent ones (no such channel, not a
        member, ...) are logged and dropped so one bad channel cannot block the others.
        """
        claim = ("post", str(item.envelope.id))
        state = await self.seen.begin(*claim)
        if state == "done":
            return  # another replica (or this one, before a restart) posted it
        if state == "busy":
            raise DeliveryBusy(f"reply seq {item.seq} is being posted by another replica")
        if state == "resumed" and await self._posted_before(item):
            await self.seen.finish(*claim)  # the replica that died had posted it
            return
        if await self._post(item):
            await self.seen.finish(*claim)

    async def _posted_before(self, item: ObservedReply) -> bool:
        """Whether the reply is in its thread already (a replica died between posting it and
        marking it done): each post carries the reply's id in its message metadata."""
        conv = item.envelope.conversation
        if not conv.thread:
            return False  # a post outside a thread is not looked up: rather twice than never
        try:
            answer = await self.client.conversations_replies(
                channel=conv.id, ts=conv.thread, include_all_metadata=True, limit=200
            )
        except SlackApiError as exc:
            log.warning("cannot check thread %s for reply seq %s: %s", conv.thread, item.seq, exc)
            return False
        wanted = str(item.envelope.id)
        return any(
            (m.get("metadata") or {}).get("event_payload", {}).get("reply_id") == wanted
            for m in answer.get("messages") or []
        )

    async def _post(self, item: ObservedReply) -> bool:
        """Post the reply; True when done (posted, or dropped for good), raise to retry."""
        conv = item.envelope.conversation
        text, blocks = reply_text(item.reply), reply_blocks(item.reply)
        try:
            await self.client.chat_postMessage(
                channel=conv.id,
                thread_ts=conv.thread,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                metadata={
                    "event_type": REPLY_METADATA,
                    "event_payload": {"reply_id": str(item.envelope.id)},
                },
            )
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in {"not_in_channel", "channel_not_found"} and await self._respond(
                conv.id, text, blocks
            ):
                return True
            if error in PERMANENT_ERRORS:
                log.error("reply seq %s to Slack %s dropped: %s", item.seq, conv.id, error)
                return True
            raise
        return True

    async def _respond(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> bool:
        """Answer a slash command through its response URL (the bot is not in that channel)."""
        url = self._response_urls.get(channel)
        if not url:
            return False
        response = await AsyncWebhookClient(url).send(
            text=text, blocks=blocks, response_type="in_channel"
        )
        return response.status_code == 200

    # -- events in ------------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.bolt
        app.middleware(self._dedup_event)
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)
        app.command("/frontdoor")(self._on_command)
        app.action(re.compile(rf"^{QUICK_REPLY_ACTION}:\d+$"))(self._on_quick_reply)
        app.action(re.compile(rf"^{HANDOFF_ACTION}:(claim|handback|close)$"))(
            self._on_handoff_button
        )

    async def _dedup_event(
        self, body: dict[str, Any], request: AsyncBoltRequest, next: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Take each Events API delivery once (Slack retries the same ``event_id``).

        The event is claimed with a lease until its listener is done (``_finish_event``): a
        retry of a done event is acknowledged and ignored; one whose claim another gateway
        holds is not acknowledged (503), so Slack delivers it again later, and by then it is
        done, or its claim, held by a gateway that died, has expired and is taken over.
        """
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if not event_id:
            return await next()
        retry = (request.headers.get("x-slack-retry-num") or ["0"])[0]
        state = await self.seen.begin("evt", str(event_id))
        if state == "done":
            log.info("Slack event %s already taken (retry %s); ignored", event_id, retry)
            return await request.context.ack()
        if state == "busy":
            log.info("Slack event %s is being taken elsewhere (retry %s); later", event_id, retry)
            return BoltResponse(status=503, body="")
        request.context["frontdoor_event_id"] = str(event_id)
        return await next()

    async def _finish_event(self, context: Any) -> None:
        event_id = context.get("frontdoor_event_id")
        if event_id:
            await self.seen.finish("evt", event_id)

    def _is_own(self, event: dict[str, Any], context: dict[str, Any]) -> bool:
        own_user = context.get("bot_user_id") or self.bot_user_id
        return bool(
            event.get("bot_id")
            or event.get("subtype") in _IGNORED_SUBTYPES
            or (own_user and event.get("user") == own_user)
        )

    async def _on_mention(self, event: dict[str, Any], context: Any) -> None:
        await asyncio.shield(self._take(event, context, mentioned=True))

    async def _on_message(self, event: dict[str, Any], context: Any) -> None:
        await asyncio.shield(self._take(event, context, mentioned=False))

    async def _take(self, event: dict[str, Any], context: Any, *, mentioned: bool) -> None:
        """Route the event, then mark it done. Shielded: Slack hanging up after 3 s must not
        cancel a turn half way; one that fails keeps its claim until the lease ends, so
        Slack's next retry runs it."""
        await self._route_message(event, context, mentioned=mentioned)
        await self._finish_event(context)

    async def _route_message(self, event: dict[str, Any], context: Any, *, mentioned: bool) -> None:
        if self._is_own(event, context) or not event.get("user"):
            return
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        thread_ts = event.get("thread_ts")
        text = str(event.get("text") or "")
        own_user = context.get("bot_user_id") or self.bot_user_id
        # A `message` event of a message that mentions the bot is that mention: whichever of
        # `app_mention` / `message` arrives first takes it.
        mentioned = mentioned or bool(own_user and f"<@{own_user}>" in text)
        is_dm = event.get("channel_type") == "im"
        in_support_thread = bool(thread_ts) and channel == self.config.support_channel
        follow_up = (
            not (mentioned or is_dm or in_support_thread)
            and bool(thread_ts)
            and self.threads is not None
            and not _MENTION.search(text)  # addressed to someone else in the thread
            and await self.threads.followed(channel, str(thread_ts))
        )
        if not (mentioned or is_dm or in_support_thread or follow_up):
            return  # channel chatter that is not for the bot
        # the message is its event's (a redelivery of that event, after a gateway died, takes
        # it again); the twin event of the same message, or another replica, finds it taken
        holder = f"evt:{context.get('frontdoor_event_id') or uuid.uuid4().hex}"
        if not channel or not ts or not await self.seen.claim_as(holder, "msg", channel, ts):
            return  # already taken (a retry, the twin event, another replica)
        if (
            in_support_thread
            and self.handoff
            and (record := await self.handoff.for_thread(channel, str(thread_ts))) is not None
        ):
            try:  # the agent's words go to the user: the edge's text rule applies
                agent_text = clean_text(text)
            except BadText:
                log.info("Slack message %s ignored: its text is not valid Unicode", ts)
                return
            await self.handoff.agent_message(
                record, user_id=str(event["user"]), text=agent_text, ts=ts
            )
            return
        if not (mentioned or is_dm or follow_up):
            return
        if own_user:
            text = text.replace(f"<@{own_user}>", " ")
        thread = str(thread_ts) if thread_ts else (None if is_dm else ts)
        if thread and not is_dm and self.threads is not None:
            await self.threads.follow(channel, thread)  # its next messages need no mention
        kind = "dm" if is_dm else ("mention" if mentioned else "thread")
        await self._turn(
            channel=channel,
            thread=thread,
            text=from_slack(text).strip(),
            user_id=str(event["user"]),
            message_id=ts,
            metadata={"team": event.get("team"), "kind": kind},
        )

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "").strip()
        if not text:
            await ack(text=_USAGE)
            return
        await ack(response_type="in_channel")
        channel = str(command["channel_id"])
        if command.get("response_url"):
            self._response_urls[channel] = str(command["response_url"])
        await self._turn(
            channel=channel,
            thread=None,
            text=text,
            user_id=str(command["user_id"]),
            user_name=command.get("user_name"),
            message_id=f"command:{command.get('trigger_id') or time.time_ns()}",
            metadata={"team": command.get("team_id"), "kind": "command"},
        )

    async def _on_quick_reply(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id") or body["container"]["channel_id"])
        message_ts = str(message.get("ts") or body["container"]["message_ts"])
        if not await self.seen.claim("act", channel, message_ts):
            return  # a second press on the same message
        user = body["user"]
        value, title = str(action.get("value", "")), action.get("text", {}).get("text", "")
        # Replace the buttons by what was chosen, so the choice is visible and made once.
        kept = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
        chosen = {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<@{user['id']}> chose *{escape(title or value)}*"}
            ],
        }
        try:
            await self.client.chat_update(
                channel=channel, ts=message_ts, text=message.get("text", ""), blocks=[*kept, chosen]
            )
        except SlackApiError as exc:
            log.info("could not update the quick-reply message: %s", exc.response.get("error"))
        thread = message.get("thread_ts")
        await self._turn(
            channel=channel,
            thread=str(thread) if thread else None,
            text=value,
            user_id=str(user["id"]),
            user_name=user.get("username") or user.get("name"),
            message_id=f"action:{action.get('action_ts') or message_ts}",
            metadata={"kind": "button", "team": (body.get("team") or {}).get("id")},
        )

    async def _on_handoff_button(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        if self.handoff is None:
            return
        channel = str((body.get("channel") or {}).get("id") or body["container"]["channel_id"])
        message_ts = str((body.get("message") or {}).get("ts") or body["container"]["message_ts"])
        record = await self.handoff.for_thread(channel, message_ts)
        if record is None:
            return
        user_id = str(body["user"]["id"])
        if action.get("value") == "claim":
            ts = str(action.get("action_ts") or message_ts)
            await self.handoff.claim(record, user_id=user_id, ts=ts)
            return
        outcome = "closed" if action.get("value") == "close" else "handback"
        await self.handoff.end(record, by=user_id, outcome=outcome)

    async def _turn(
        self,
        *,
        channel: str,
        thread: str | None,
        text: str,
        user_id: str,
        message_id: str,
        user_name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        try:
            text = clean_text(text)
        except BadText:
            log.info("Slack message %s ignored: its text is not valid Unicode", message_id)
            return
        if not text:
            return
        message = IncomingMessage(
            channel="slack",
            conversation_id=channel,
            thread=thread,
            text=text[:4000],
            user_id=slack_actor_id(user_id),
            user_name=user_name,
            bot=self.config.bot_for(channel),
            message_id=message_id,
            metadata={k: v for k, v in (metadata or {}).items() if v is not None},
        )
        try:
            await self._turns(message)
        except Exception:
            log.exception("Slack turn failed (channel %s, message %s)", channel, message_id)


def slack_actor_id(user_id: str) -> str:
    """The actor id of a Slack user (Slack's request signature proved it): ``slack:U123``."""
    return f"{SLACK_PREFIX}{user_id}"
