"""``frontdoor bench workspace``: the agent workspace with a full inbox, and agent replies.

Issue 12's target: the inbox opens in under 300 ms with 10,000 tickets and 1,000 waiting
conversations, and an agent's reply reaches the widget with p99 under 200 ms while
``frontdoor bench e2e``'s load runs beside it.

It starts its own stack (``bench_e2e.own_stack``), makes an agent with the ``frontdoor users``
CLI, seeds the tickets and the waiting hand-offs (``bench_workspace_seed``), signs in over HTTP
as the page does (cookie, CSRF token), and measures:

- **inbox open**, what ``agent.js`` asks when it shows the inbox: ``GET /agent/api/session``,
  then at once the inbox stream's first ``snapshot`` event (``GET /agent/api/inbox/stream``)
  and the open tickets (``GET /agent/api/tickets?status=open&status=pending&status=on_hold``);
  the page is shown when both arrived. ``GET /agent/api/inbox`` (the same list as JSON) too;
- **agent reply to widget**: for guests waiting on a WebSocket, the agent claims the
  conversation, then the time from sending ``POST .../reply`` until the guest's socket receives
  that reply; one at a time, first alone, then with ``bench e2e``'s conversation drivers
  running beside it (``bench_e2e.background_load``).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from frontdoor.bench_e2e import BenchError, ChannelStats, background_load
from frontdoor.bench_workspace_seed import (
    AGENT,
    PASSWORD,
    Guest,
    close_guests,
    progress,
    seed_rest_handoffs,
    seed_tickets,
    seed_ws_guests,
)

INBOX_TARGET_MS = 300.0
REPLY_TARGET_MS = 200.0
REPLY_TIMEOUT_S = 15.0
OPEN_TICKETS = "/agent/api/tickets?status=open&status=pending&status=on_hold"


def percentiles(seconds: list[float]) -> dict[str, float | int | None]:
    """count, p50, p99, max and mean (ms) of ``seconds``."""
    lat = sorted(seconds)

    def pct(p: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))] * 1000, 2)

    return {
        "count": len(lat),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
    }


@dataclass
class AgentClient:
    """The signed-in agent: its HTTP client (cookie jar) and CSRF token."""

    http: aiohttp.ClientSession
    csrf: str

    async def get_json(self, path: str) -> Any:
        async with self.http.get(path) as r:
            if r.status != 200:
                raise BenchError(f"GET {path} answered HTTP {r.status}: {await r.text()}")
            return await r.json()

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST as the page does; sent again once when the server had just closed the kept-alive
        connection (callers make the body idempotent: a reply's ``client_id``)."""
        headers = {"X-CSRF-Token": self.csrf}
        for attempt in range(2):
            try:
                async with self.http.post(path, json=body, headers=headers) as r:
                    if r.status != 200:
                        raise BenchError(f"POST {path} answered HTTP {r.status}: {await r.text()}")
                    return await r.json()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt:
                    raise
        raise AssertionError("unreachable")


async def sign_in(http: aiohttp.ClientSession) -> AgentClient:
    """Sign in as the page does; the session cookie stays in ``http``'s jar."""
    body = {"user": AGENT, "password": PASSWORD}
    async with http.post("/agent/api/session", json=body) as r:
        if r.status != 200:
            raise BenchError(f"sign-in answered HTTP {r.status}: {await r.text()}")
        info = await r.json()
    return AgentClient(http, str(info["csrf_token"]))


async def first_snapshot(http: aiohttp.ClientSession) -> int:
    """Open the inbox stream, read until its first ``snapshot`` event; its size in bytes."""
    async with http.get("/agent/api/inbox/stream") as r:
        if r.status != 200:
            raise BenchError(f"the inbox stream answered HTTP {r.status}: {await r.text()}")
        buffer = b""
        async for chunk in r.content.iter_any():
            buffer += chunk
            if buffer.startswith(b"event: snapshot") and b"\n\n" in buffer:
                return len(buffer)
        raise BenchError("the inbox stream ended before its snapshot")


async def wait_waiting(agent: AgentClient, count: int, limit: float = 120.0) -> list[Any]:
    """Wait until the inbox lists ``count`` conversations; the list."""
    deadline = time.monotonic() + limit
    while True:
        inbox = await agent.get_json("/agent/api/inbox")
        items = list(inbox["conversations"])
        if len(items) >= count:
            return items
        if time.monotonic() > deadline:
            raise BenchError(f"the inbox lists {len(items)} conversations, not {count}")
        await asyncio.sleep(0.5)


async def measure_opens(agent: AgentClient, opens: int) -> dict[str, Any]:
    """Open the inbox ``opens`` times as the page does; each part's latencies."""
    parts: dict[str, list[float]] = {
        "page": [],
        "session": [],
        "snapshot": [],
        "tickets": [],
        "inbox_json": [],
    }
    sizes: dict[str, int] = {}

    async def timed(part: str, call: Any) -> Any:
        start = time.perf_counter()
        value = await call
        parts[part].append(time.perf_counter() - start)
        return value

    for _ in range(opens):
        start = time.perf_counter()
        await timed("session", agent.get_json("/agent/api/session"))
        size, tickets = await asyncio.gather(
            timed("snapshot", first_snapshot(agent.http)),
            timed("tickets", agent.get_json(OPEN_TICKETS)),
        )
        parts["page"].append(time.perf_counter() - start)
        sizes = {"snapshot_bytes": size, "tickets_listed": len(tickets.get("items", []))}
        await timed("inbox_json", agent.get_json("/agent/api/inbox"))
    return {name: percentiles(xs) for name, xs in parts.items()} | sizes


async def measure_replies(
    agent: AgentClient,
    guests: list[Guest],
    refs: dict[str, str],
    count: int,
    phase: str,
) -> dict[str, Any]:
    """``count`` agent replies, one at a time, round the guests; time until each socket has
    its reply. Lost: not received within ``REPLY_TIMEOUT_S``."""
    loop = asyncio.get_running_loop()
    took: list[float] = []
    post_took: list[float] = []
    lost = 0
    for i in range(count):
        guest = guests[i % len(guests)]
        text = f"bench {phase} reply {i} {uuid.uuid4().hex[:8]}"
        arrived: asyncio.Future[float] = loop.create_future()
        guest.pending[text] = arrived
        ref = refs[guest.sender]
        start = time.perf_counter()
        await agent.post(f"/agent/api/conversations/{ref}/reply", {"text": text, "client_id": text})
        post_took.append(time.perf_counter() - start)
        try:
            at = await asyncio.wait_for(arrived, REPLY_TIMEOUT_S)
            took.append(at - start)
        except TimeoutError:
            lost += 1
        guest.pending.pop(text, None)
    return {"replies": count, "lost": lost, "to_widget": percentiles(took)} | {
        "post_answered": percentiles(post_took)
    }


def _load_summary(stats: ChannelStats, conversations: int) -> dict[str, Any]:
    turns = len(stats.latencies) + stats.unanswered
    return {
        "conversations": conversations,
        "turns": turns,
        "unanswered": stats.unanswered,
        "errors": stats.errors,
        "turns_per_s": round(turns / stats.elapsed, 1) if stats.elapsed else None,
        "latency": percentiles(stats.latencies),
    }


async def run(
    base: str,
    api_key: str,
    *,
    tickets: int,
    waiting: int,
    replies: int,
    opens: int,
    load_conversations: int = 50,
) -> dict[str, Any]:
    """Seed, sign in, measure; the report."""
    widget_guests = max(1, min(waiting, replies))
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0)  # the guests hold their sockets
    jar = aiohttp.CookieJar(unsafe=True)  # the stack listens on an IP address
    pending: dict[str, asyncio.Future[float]] = {}
    report: dict[str, Any] = {
        "tickets": tickets,
        "waiting": waiting,
        "widget_guests": widget_guests,
    }
    async with (
        aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client,
        aiohttp.ClientSession(base, timeout=timeout, cookie_jar=jar) as agent_http,
    ):
        started = time.perf_counter()
        await seed_tickets(client, api_key, tickets)
        report["seed_tickets_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        await seed_rest_handoffs(client, waiting - widget_guests)
        guests = await seed_ws_guests(client, widget_guests, pending)
        report["seed_waiting_s"] = round(time.perf_counter() - started, 1)
        try:
            agent = await sign_in(agent_http)
            items = await wait_waiting(agent, waiting)
            report["inbox_listed"] = len(items)
            progress(f"signed in; the inbox lists {len(items)} conversations")
            await measure_opens(agent, 2)  # first use: connections, caches
            report["inbox_open"] = await measure_opens(agent, opens)
            progress("inbox opens measured")
            refs = {str(i["conversation"]): str(i["ref"]) for i in items}
            for guest in guests:
                await agent.post(f"/agent/api/conversations/{refs[guest.sender]}/claim", {})
            report["reply_alone"] = await measure_replies(agent, guests, refs, replies, "alone")
            progress("replies alone measured; starting the e2e load beside them")
            report["reply_under_load"], report["load"] = await _replies_under_load(
                base, agent, guests, refs, replies, load_conversations
            )
        finally:
            await close_guests(guests)
    report["lost_replies"] = report["reply_alone"]["lost"] + report["reply_under_load"]["lost"]
    report["targets"] = _targets(report)
    return report


async def _replies_under_load(
    base: str,
    agent: AgentClient,
    guests: list[Guest],
    refs: dict[str, str],
    replies: int,
    conversations: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replies again while ``conversations`` e2e conversations run."""
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=conversations + 10)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:
        load = asyncio.create_task(background_load(client, conversations, stop))
        await asyncio.sleep(3.0)  # the load's conversations past their first turns
        try:
            measured = await measure_replies(agent, guests, refs, replies, "load")
        finally:
            stop.set()
        stats = await load
    return measured, _load_summary(stats, conversations)


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    page_p99 = report["inbox_open"]["page"]["p99_ms"]
    reply_p99 = report["reply_under_load"]["to_widget"]["p99_ms"]
    return {
        "inbox_open_p99_under_300_ms": page_p99 is not None and page_p99 < INBOX_TARGET_MS,
        "reply_under_load_p99_under_200_ms": reply_p99 is not None and reply_p99 < REPLY_TARGET_MS,
    }
