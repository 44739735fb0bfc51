"""``frontdoor doctor`` against a real server: what is fine and what is wrong."""

from __future__ import annotations

from pydantic import BaseModel

from backend_services.registry import service_names
from backend_services.runtime import HandlerContext, Service
from events.bus import Bus
from events.embedded import EmbeddedNats, free_port
from frontdoor.doctor import run_doctor
from tests.claims import signed_runner


class Empty(BaseModel):
    """No input/output."""


async def test_doctor_reports_streams_and_missing_services(
    nats_server: EmbeddedNats, bus: Bus
) -> None:
    name = service_names()[0]
    svc = Service(name)

    @svc.handler("noop")
    async def noop(payload: Empty, ctx: HandlerContext) -> Empty:
        return payload

    runner = signed_runner(svc, bus)
    await runner.start()
    try:
        report = await run_doctor(nats_server.url, shown_url=nats_server.url)
    finally:
        await runner.stop()
    by_name = {c.name: c for c in report.checks}
    assert by_name["nats"].ok and by_name["jetstream"].ok
    assert by_name["stream FD_EVENTS"].ok and by_name["stream FD_INTENTS"].ok
    assert by_name[f"service {name}"].ok
    missing = [n for n in service_names() if n != name]
    for other in missing:
        assert not by_name[f"service {other}"].ok
        assert "frontdoor serve" in by_name[f"service {other}"].detail
    assert report.ok is (not missing)


async def test_doctor_reports_missing_streams(nats_server: EmbeddedNats) -> None:
    report = await run_doctor(nats_server.url, shown_url="x")
    by_name = {c.name: c for c in report.checks}
    assert not by_name["stream FD_EVENTS"].ok and "missing" in by_name["stream FD_EVENTS"].detail
    assert not report.ok


async def test_doctor_reports_an_unreachable_server() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    report = await run_doctor(url, shown_url=url, timeout=1.0)
    assert not report.ok
    assert "cannot reach NATS" in report.checks[0].detail
