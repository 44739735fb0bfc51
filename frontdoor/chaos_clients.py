"""The users of ``frontdoor bench chaos``: REST, WebSocket and Slack conversations that move to
the other gateway when theirs dies, as real clients would, each keeping what it received.

- REST retries a call that got no answer on the other gateway with the same idempotency key
  (``metadata.message_id``), and fetches a late answer from ``/webhooks/rest/pending``.
- WebSocket reconnects to the other gateway with ``since=<last seq>`` and resends the message
  with the same ``client_id`` (docs/web-channel.md).
- Slack is played as Slack plays it: a signed ``app_mention`` event, resent with the same
  ``event_id`` and ``X-Slack-Retry-Num`` to the other gateway when a delivery is not
  acknowledged; the answers are what the gateways post to the Web API stand-in.

Each conversation plays ``bench_e2e.SCRIPT`` (Slack: its support-bot part, the ticket form and
the ticket's status) turn after turn until told to stop, and stops at its first lost turn.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from frontdoor.bench_e2e import SCRIPT, WORKING_PREFIX, ScriptState, ScriptTurn
from frontdoor.chaos_stack import SLACK_CHANNEL, SLACK_SECRET
from frontdoor.slack_standin import BOT_USER, FakeSlack, event_body, sign

#: The support bot's part of the script (Slack's channel is the support bot's): the ticket form,
#: then the ticket's status.
SUPPORT_SCRIPT = tuple(turn for turn in SCRIPT if turn.bot == "support")
CALL_TIMEOUT = aiohttp.ClientTimeout(total=30)
#: When Slack sends an unacknowledged event again: nearly at once, after 1 and after 5 minutes.
SLACK_RETRY_DELAYS = (0.0, 0.25, 60.0, 300.0)
#: A reply that carries a failure's reference ("Sorry, something went wrong ... (reference
#: 1a2b3c4d)"): the turn failed, whatever the script's pattern would accept.
ERROR_REPLY = re.compile(r"\(reference [0-9a-f]{6,}\)")


class TurnLost(Exception):
    """A turn cannot be completed (the message says why)."""


@dataclass
class TurnRecord:
    """One user turn: when it was sent and answered, how many deliveries it took."""

    index: int
    sent_at: float
    answered_at: float | None = None
    attempts: int = 1
    failure: str | None = None
    ticket: str | None = None


@dataclass
class Received:
    """One reply as the user got it (WebSocket frames carry the envelope id and sequence)."""

    text: str
    id: str | None = None
    seq: int | None = None


@dataclass
class Transcript:
    """A conversation's turns and everything its user received, in order."""

    n: int
    channel: str
    conversation_id: str = ""
    thread: str | None = None
    turns: list[TurnRecord] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    moves: int = 0


class Conversation:
    """The loop every channel shares: play a turn, check its answer, go on until ``stop``."""

    channel = ""
    script: tuple[ScriptTurn, ...] = SCRIPT

    def __init__(
        self,
        n: int,
        gateways: list[str],
        http: aiohttp.ClientSession,
        run: str,
        *,
        slack: FakeSlack | None = None,
        turn_timeout: float = 90.0,
    ) -> None:
        self.n = n
        self.slack = slack
        self.gateways = gateways
        self.gw = n % len(gateways)
        self.http = http
        self.run_id = run
        self.state = ScriptState(n)
        if self.script is not SCRIPT:
            self.state.start = 0
        self.turn_timeout = turn_timeout
        self.transcript = Transcript(n, self.channel)

    @property
    def url(self) -> str:
        """The gateway this user talks to now."""
        return self.gateways[self.gw]

    def move(self) -> None:
        """Go to the next gateway (the load balancer's choice once one is gone)."""
        self.gw = (self.gw + 1) % len(self.gateways)
        self.transcript.moves += 1

    def key(self, t: int) -> str:
        """The id of turn ``t`` (idempotency key, client_id, Slack event id)."""
        return f"{self.run_id}-{self.n}-{t}"

    async def open(self) -> None:
        """Before the first turn (a session, a socket)."""

    async def new_session(self) -> str:
        """A guest session (valid on every gateway: they share its secret); its token."""
        while True:
            try:
                async with self.http.post(f"{self.url}/api/session", timeout=CALL_TIMEOUT) as r:
                    if r.status == 200:
                        session = await r.json()
                        break
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.move()
            await asyncio.sleep(0.2)
        self.transcript.conversation_id = str(session["sender"])
        return str(session["token"])

    async def close(self) -> None:
        """After the last turn: collect what still arrives."""

    async def play(self, turn: ScriptTurn, t: int, record: TurnRecord) -> list[str]:
        """Send turn ``t`` and return the texts that answer it."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> Transcript:
        """Turns until ``stop`` is set (or one is lost)."""
        await self.open()
        t = 0
        while not stop.is_set():
            turn = self.script[(self.state.start + t) % len(self.script)]
            record = TurnRecord(t, time.monotonic())
            self.transcript.turns.append(record)
            try:
                texts = await asyncio.wait_for(self.play(turn, t, record), self.turn_timeout)
            except TimeoutError:
                record.failure = f"no answer within {self.turn_timeout:g} s"
                break
            except TurnLost as exc:
                record.failure = str(exc)
                break
            failure = self.state.check(turn, texts)
            if any(ERROR_REPLY.search(text) for text in texts):
                failure = "an error reply"  # answered, but not by what the turn asked for
            if failure:
                record.failure = f"{failure}: {texts!r}"[:300]
                break
            record.answered_at = time.monotonic()
            if turn.save_ticket:
                record.ticket = self.state.ticket
            t += 1
        await self.close()
        return self.transcript

    def keep(self, texts: list[str]) -> None:
        """Note texts the user received (progress notes are not answers)."""
        self.transcript.received += [
            Received(text) for text in texts if not text.startswith(WORKING_PREFIX)
        ]


class RestConversation(Conversation):
    """A visitor of the REST webhook with a guest session valid on every gateway."""

    channel = "rest"

    async def open(self) -> None:
        self.headers = {"Authorization": f"Bearer {await self.new_session()}"}

    async def play(self, turn: ScriptTurn, t: int, record: TurnRecord) -> list[str]:
        body = {
            "message": self.state.text(turn),
            "metadata": {"bot": turn.bot, "message_id": self.key(t)},
        }
        while True:
            try:
                async with self.http.post(
                    f"{self.url}/webhooks/rest/webhook",
                    json=body,
                    headers=self.headers,
                    timeout=CALL_TIMEOUT,
                ) as r:
                    status = r.status
                    answer: Any = await r.json() if status == 200 else await r.text()
            except (aiohttp.ClientError, TimeoutError):
                status, answer = 0, []  # no answer: the gateway is gone (or hung)
            if status == 200:
                break
            if status and status < 500 and status != 429:
                raise TurnLost(f"HTTP {status}: {str(answer)[:200]}")
            record.attempts += 1
            if not status:
                self.move()
            await asyncio.sleep(0.25)
        texts = [str(m.get("text", "")) for m in answer or []]
        self.keep(texts)
        answers = [x for x in texts if not x.startswith(WORKING_PREFIX)]
        if answers and re.search(turn.expect, "\n".join(answers)):
            return answers
        return answers + await self._pending(turn)

    async def _pending(self, turn: ScriptTurn) -> list[str]:
        """Late replies from ``/webhooks/rest/pending`` until they answer ``turn``."""
        got: list[str] = []
        while not re.search(turn.expect, "\n".join(got)):
            await asyncio.sleep(0.5)
            try:
                async with self.http.get(
                    f"{self.url}/webhooks/rest/pending", headers=self.headers, timeout=CALL_TIMEOUT
                ) as r:
                    if r.status != 200:
                        continue
                    texts = [str(m.get("text", "")) for m in await r.json()]
            except (aiohttp.ClientError, TimeoutError):
                self.move()
                continue
            self.keep(texts)
            got += [x for x in texts if not x.startswith(WORKING_PREFIX)]
        return got


class WebSocketConversation(Conversation):
    """A widget: one socket, moved to the other gateway with ``since`` when it breaks."""

    channel = "ws"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.last_seq: int | None = None
        self.token = ""
        self.seen_ids: set[str] = set()
        #: non-working reply texts by correlation id
        self.by_turn: dict[str, list[str]] = {}

    async def open(self) -> None:
        self.token = await self.new_session()
        await self._connect(first=True)

    async def _connect(self, *, first: bool = False) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
        while True:
            if not first:
                self.move()
            first = False
            since = "" if self.last_seq is None else f"?since={self.last_seq}"
            try:
                ws = await self.http.ws_connect(
                    f"{self.url}/ws{since}", timeout=aiohttp.ClientWSTimeout(ws_close=5.0)
                )
                await ws.send_json({"type": "auth", "token": self.token})
                hello = await ws.receive_json(timeout=10.0)
            except (aiohttp.ClientError, TimeoutError, TypeError, ValueError):
                await asyncio.sleep(0.25)
                continue
            if self.last_seq is None:
                self.last_seq = int(hello["last_seq"])
            self.ws = ws
            return

    def _reply(self, frame: dict[str, Any]) -> None:
        seq = int(frame["seq"])
        self.last_seq = max(self.last_seq or 0, seq)
        text = str(frame.get("text", ""))
        self.transcript.received.append(Received(text, str(frame["id"]), seq))
        if frame.get("status") != "working":
            self.by_turn.setdefault(str(frame.get("correlation_id")), []).append(text)

    async def play(self, turn: ScriptTurn, t: int, record: TurnRecord) -> list[str]:
        client_id = self.key(t)
        message = {
            "type": "message",
            "text": self.state.text(turn),
            "bot": turn.bot,
            "client_id": client_id,
        }
        cid: str | None = None
        resent = finished = False
        send = True
        while True:
            if self.ws is None or self.ws.closed:
                await self._connect()
                send, resent = True, True
                record.attempts += 1
            assert self.ws is not None
            if send:
                try:
                    await self.ws.send_json(message)
                except (aiohttp.ClientError, ConnectionError, RuntimeError):
                    await self.ws.close()
                    continue
                send = False
            try:
                msg = await self.ws.receive(timeout=1.0)
            except TimeoutError:
                msg = None
            if msg is not None and msg.type != aiohttp.WSMsgType.TEXT:
                await self.ws.close()  # closed or broken: reconnect and resend
                continue
            if msg is not None:
                frame = json.loads(msg.data)
                kind = frame.get("type")
                if kind == "ack" and frame.get("client_id") == client_id:
                    cid = str(frame["correlation_id"])
                    finished = finished or bool(frame.get("duplicate"))
                elif kind == "reply":
                    self._reply(frame)
                elif kind == "typing" and not frame.get("active"):
                    finished = finished or frame.get("correlation_id") == cid
                elif kind == "error":
                    raise TurnLost(f"error frame: {frame}")
            answers = self.by_turn.get(cid or "", [])
            # after a resend the answer may come as the replay of ``since`` before the new ack:
            # the widget shows it, though that gateway may never say the turn is finished
            if cid and (finished or resent) and re.search(turn.expect, "\n".join(answers)):
                return answers
            if cid and finished and answers and not resent and msg is None:
                return answers  # complete, but not the expected answer: the check says so

    async def close(self) -> None:
        if self.ws is None:
            return
        # what still comes in the next seconds (a late or doubled reply) counts too
        deadline = time.monotonic() + 2.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("type") == "reply":
                self._reply(frame)
        await self.ws.close()


class SlackConversation(Conversation):
    """A Slack thread in the support bot's channel: signed events in, the stand-in's posts out."""

    channel = "slack"
    script = SUPPORT_SCRIPT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.slack is not None, "a Slack conversation needs the stand-in"
        self.base = 1_700_000_000 + self.n
        self.root = f"{self.base}.000000"
        self.transcript.conversation_id = SLACK_CHANNEL
        self.transcript.thread = self.root
        self.consumed = 0

    def _posts(self) -> list[str]:
        assert self.slack is not None
        return self.slack.threads.get((SLACK_CHANNEL, self.root), [])

    async def play(self, turn: ScriptTurn, t: int, record: TurnRecord) -> list[str]:
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": f"UCHAOS{self.n:04d}",
            "text": f"<@{BOT_USER}> {self.state.text(turn)}",
            "ts": self.root if t == 0 else f"{self.base}.{t:06d}",
            "channel": SLACK_CHANNEL,
            "channel_type": "channel",
        }
        if t:
            event["thread_ts"] = self.root
        body = json.dumps(event_body(event, f"Ev{self.key(t)}")).encode()
        # Slack's deliveries go on while the user looks at the thread: an answer may come from
        # a delivery that timed out (a slow turn) long before Slack's next retry
        delivery = asyncio.create_task(self._deliver(body, record))
        try:
            while True:  # until the thread holds this turn's answer
                posts = self._posts()[self.consumed :]
                answers = [x for x in posts if not x.startswith(WORKING_PREFIX)]
                if answers and re.search(turn.expect, "\n".join(answers)):
                    self.consumed += len(posts)
                    self.keep(posts)
                    return answers
                if delivery.done():
                    delivery.result()  # raises TurnLost when Slack gave up
                await asyncio.sleep(0.05)
        finally:
            delivery.cancel()

    async def _deliver(self, body: bytes, record: TurnRecord) -> None:
        """Slack's delivery: an event not acknowledged within 3 s is sent again with the same
        event id and ``X-Slack-Retry-Num``, nearly at once, after a minute, after five."""
        reason = ""
        for retry, delay in enumerate(SLACK_RETRY_DELAYS):
            await asyncio.sleep(delay)
            headers = {"Content-Type": "application/json", **sign(SLACK_SECRET, body)}
            if retry:
                headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": reason}
                record.attempts += 1
            try:
                async with self.http.post(
                    f"{self.url}/slack/events",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=3),
                ) as r:
                    if r.status == 200:
                        return
                    reason = "http_error"
            except (aiohttp.ClientError, TimeoutError):
                reason = "http_timeout"
                self.move()
        raise TurnLost("Slack gave up: no gateway acknowledged the event")

    async def close(self) -> None:
        await asyncio.sleep(2.0)  # a late or doubled post counts too
        posts = self._posts()[self.consumed :]
        self.consumed += len(posts)
        self.keep(posts)


CHANNELS: dict[str, type[Conversation]] = {
    "rest": RestConversation,
    "ws": WebSocketConversation,
    "slack": SlackConversation,
}
