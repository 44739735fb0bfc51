"""Rate limits shared by gateway replicas (``FRONTDOOR_RATE_LIMIT_STORAGE=nats``), on a real
nats-server: counted together, sliding and expiring, a sensible Retry-After, open when NATS KV
is not there, and only the gateway's NATS user may use the bucket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import nats
import pytest
from httpx import Response

from bots.web.ratelimit import BoundedMemoryStorage, Rate, RateLimited, RateLimits
from bots.web.settings import WebSettings
from bots.web.shared_limits import SharedWindowStorage, rate_limits_for
from events import subjects
from events.bus import Bus
from events.compartments import inbox_prefix
from events.counters import CountersUnavailable, SharedCounters, counter_key
from events.embedded import EmbeddedNats
from tests.conftest import TEST_LIMITS

from .conftest import LiveServer, ScriptedDialogue, start_gateway
from .web_clients import guest_client


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def second_bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    """Another connection to the same server: another gateway replica."""
    connected = await Bus.connect(nats_server.url, limits=TEST_LIMITS)
    try:
        yield connected
    finally:
        await connected.close()


def shared(counters: SharedCounters) -> RateLimits:
    async def ready() -> SharedCounters:
        return counters

    return RateLimits(SharedWindowStorage(ready), fallback=RateLimits())


async def refused(limits: RateLimits, rate: Rate, key: str) -> RateLimited | None:
    try:
        await limits.hit(rate, key)
    except RateLimited as exc:
        return exc
    return None


async def alternate(first: LiveServer, second: LiveServer, messages: int) -> list[Response]:
    """A guest's messages sent to one gateway, then the other, and so on."""
    answers = []
    async with guest_client(first.url) as guest:
        for i in range(messages):
            live = (first, second)[i % 2]
            answers.append(
                await guest.client.post(
                    f"{live.url}/webhooks/rest/webhook", json={"message": f"m{i}"}
                )
            )
    return answers


async def test_a_caller_alternating_between_two_gateways_gets_its_limit_once(
    bus: Bus, second_bus: Bus
) -> None:
    first = await start_gateway(bus, ScriptedDialogue(), rate_limit=4, rate_limit_storage="nats")
    second = await start_gateway(
        second_bus, ScriptedDialogue(), rate_limit=4, rate_limit_storage="nats"
    )
    try:
        answers = await alternate(first, second, 6)
        assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 429]
        assert answers[-1].json()["limit"] == "caller"
        assert 1 <= int(answers[-1].headers["Retry-After"]) <= 11
    finally:
        await first.stop()
        await second.stop()


async def test_in_memory_each_gateway_counts_on_its_own(bus: Bus, second_bus: Bus) -> None:
    """The control: what sharing fixes (the default, for one process)."""
    first = await start_gateway(bus, ScriptedDialogue(), rate_limit=2)
    second = await start_gateway(second_bus, ScriptedDialogue(), rate_limit=2)
    try:
        assert [r.status_code for r in await alternate(first, second, 4)] == [200] * 4
    finally:
        await first.stop()
        await second.stop()


async def test_the_window_slides_and_expires_across_replicas(bus: Bus, second_bus: Bus) -> None:
    clock = Clock(1000.0)  # the start of a 10 s window
    one = await SharedCounters.open(bus, clock=clock)
    two = await SharedCounters.open(second_bus, clock=clock)

    async def hits(n: int) -> list[bool]:
        out = []
        for i in range(n):
            allowed, _ = await (one, two)[i % 2].acquire("caller:k", 3, 10)
            out.append(allowed)
        return out

    assert await hits(4) == [True, True, True, False]
    assert one.conflicts + two.conflicts >= 1  # each wrote on a revision the other had moved
    clock.now = 1015.0  # half the next window: the 3 of the window before weigh 1.5
    assert await hits(3) == [True, True, False]
    counts = await two.count("caller:k", 10)
    assert (counts.previous, counts.current) == (3, 2) and counts.estimate == pytest.approx(3.5)
    clock.now = 1025.0  # the 3 are forgotten, the 2 weigh 1
    assert (await one.count("caller:k", 10)).estimate == pytest.approx(1.0)
    clock.now = 1030.0
    assert await hits(4) == [True, True, True, False]
    await one.clear("caller:k")
    assert (await two.count("caller:k", 10)).estimate == 0


async def test_retry_after_is_when_there_is_room_again(bus: Bus) -> None:
    clock = Clock(1005.0)  # the middle of a 10 s window
    limits = shared(await SharedCounters.open(bus, clock=clock))
    rate = Rate("caller", 4, 10, "messages")
    for _ in range(4):
        assert await refused(limits, rate, "k") is None
    full = await refused(limits, rate, "k")
    assert full is not None and full.retry_after == 6 and full.limit == "caller"
    assert "at most 4 messages per 10 s; try again in 6 s" in str(full)
    clock.now = 1010.0  # a new window, but the last one still weighs fully
    assert await refused(limits, rate, "k") is not None
    clock.now = 1011.0  # 1005 + 6
    assert await refused(limits, rate, "k") is None  # weight 0.9: 3.6 + 1
    again = await refused(limits, rate, "k")
    assert again is not None and again.retry_after == 2  # room once 4 x weight + 1 < 4
    clock.now = 1012.0
    assert await refused(limits, rate, "k") is not None  # 3.2 + 1
    clock.now = 1013.0
    assert await refused(limits, rate, "k") is None  # 2.8 + 1


async def test_keys_are_any_text(bus: Bus) -> None:
    counters = await SharedCounters.open(bus)
    names = ["LIMITER/address/2001:db8::1/600/60/second", "a.b*>", "é ü", "x" * 500, ""]
    assert len({counter_key(n) for n in names}) == len(names)
    for name in names:
        assert (await counters.acquire(name, 1, 60))[0]
        assert not (await counters.acquire(name, 1, 60))[0]


async def test_concurrent_hits_of_one_key_never_exceed_the_limit(bus: Bus, second_bus: Bus) -> None:
    one, two = await SharedCounters.open(bus), await SharedCounters.open(second_bus)
    results = await asyncio.gather(
        *(c.acquire("address:1.2.3.4", 150, 3600) for _ in range(200) for c in (one, two))
    )
    assert sum(allowed for allowed, _ in results) == 150


async def test_a_nats_outage_fails_open_with_one_log_line_and_counts_in_memory(
    nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    fast = await Bus.connect(nats_server.url, limits=TEST_LIMITS, publish_timeout=1.0)
    settings = WebSettings(rate_limit_storage="nats", rate_limit_timeout_seconds=0.2)
    limits = rate_limits_for(settings, fast)
    rate = Rate("caller", 5, 60, "messages")
    try:
        await limits.start()
        for _ in range(3):
            await limits.hit(rate, "k")
        await nats_server.stop()
        caplog.set_level(logging.INFO, logger="frontdoor.web.limits")
        started = time.monotonic()
        for _ in range(5):  # the memory fallback starts afresh: 5 more
            await limits.hit(rate, "k")
        assert time.monotonic() - started < 2.0  # one timeout, then no more waiting
        assert await refused(limits, rate, "k") is not None  # still limited, per process
        lost = [r for r in caplog.records if r.name == "frontdoor.web.limits"]
        assert len(lost) == 1 and lost[0].levelno == logging.WARNING
        assert len(lost[0].getMessage()) < 200
    finally:
        await fast.close()


async def test_a_gateway_starts_and_serves_while_the_bucket_cannot_be_opened(
    secured_server: EmbeddedNats,
) -> None:
    """A user that may not use fd_limits (here: a service's) gets the memory limits."""
    gateway = await Bus.connect(secured_server.url_for("gateway"), limits=TEST_LIMITS)
    marketing = await Bus.connect(
        secured_server.url_for("marketing"), limits=TEST_LIMITS, ensure=False
    )

    async def denied() -> SharedCounters:
        return await SharedCounters.open(marketing, open_timeout=0.5)

    limits = RateLimits(SharedWindowStorage(denied), fallback=RateLimits())
    rate = Rate("caller", 2, 60, "messages")
    try:
        await limits.start()  # not an error
        await limits.hit(rate, "k")
        await limits.hit(rate, "k")
        assert await refused(limits, rate, "k") is not None  # counted in memory meanwhile
        with pytest.raises(CountersUnavailable):
            await denied()
    finally:
        await marketing.close()
        await gateway.close()


async def test_only_the_gateways_nats_user_may_use_fd_limits(
    secured_server: EmbeddedNats,
) -> None:
    gateway = await Bus.connect(secured_server.url_for("gateway"), limits=TEST_LIMITS)
    try:
        counters = await SharedCounters.open(gateway)
        assert (await counters.acquire("k", 1, 60))[0]
    finally:
        await gateway.close()
    for user, allowed in (("gateway", True), ("marketing", False), ("management", False)):
        errors: list[str] = []

        async def on_error(exc: Exception, errors: list[str] = errors) -> None:
            errors.append(str(exc).lower())

        nc = await nats.connect(
            secured_server.url_for(user),
            inbox_prefix=inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
        )
        try:
            for subject in (
                f"$KV.{subjects.LIMITS_BUCKET}.k",
                f"$JS.API.DIRECT.GET.KV_{subjects.LIMITS_BUCKET}.$KV.{subjects.LIMITS_BUCKET}.k",
            ):
                await nc.publish(subject, b"1:0:1")
                await nc.flush(timeout=5)
                await asyncio.sleep(0.01)
                violation = f'permissions violation for publish to "{subject.lower()}"'
                assert any(violation in e for e in errors) is not allowed, (user, subject)
        finally:
            await nc.close()


async def test_memory_is_the_default_and_long_windows_are_refused_for_nats(bus: Bus) -> None:
    settings = WebSettings()
    assert settings.rate_limit_storage == "memory"
    assert isinstance(rate_limits_for(settings, bus).storage, BoundedMemoryStorage)
    with pytest.raises(ValueError, match="at most 3600 s"):
        WebSettings(rate_limit_storage="nats", auth_failure_window_seconds=7200)


async def test_the_bucket_is_bounded(bus: Bus) -> None:
    await SharedCounters.open(bus)
    info = await bus.js.stream_info(f"KV_{subjects.LIMITS_BUCKET}")
    assert info.config.max_bytes == 128 * 1024 * 1024
    assert info.config.max_age == pytest.approx(2 * 3600)
