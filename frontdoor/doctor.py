"""``frontdoor doctor``: is NATS reachable, JetStream on, are the streams right, who answers?"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend_services import registry
from events.bus import Bus
from events.errors import BusError
from events.micro import discover
from events.streams import BusLimits, describe_streams


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str


@dataclass
class DoctorReport:
    """All checks; ``ok`` when none failed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        """Record a check."""
        self.checks.append(Check(name, ok, detail))


async def run_doctor(url: str, *, shown_url: str, timeout: float = 5.0) -> DoctorReport:
    """Check ``url``: reachability, JetStream, streams, which registered services answer."""
    report = DoctorReport()
    try:
        bus = await Bus.connect(url, name="frontdoor-doctor", ensure=False, connect_timeout=timeout)
    except BusError as exc:
        report.add("nats", False, str(exc))
        return report
    try:
        version = bus.nc.connected_server_version
        report.add(
            "nats",
            True,
            f"reachable at {shown_url} (nats-server "
            f"{version.major}.{version.minor}.{version.patch})",
        )
        try:
            account = await bus.js.account_info()
        except Exception as exc:
            report.add(
                "jetstream",
                False,
                f"JetStream is not enabled or not allowed for this user ({exc}); start "
                "nats-server with -js (or `jetstream {}` in its config)",
            )
            return report
        report.add(
            "jetstream",
            True,
            f"enabled: {account.streams} streams, {account.consumers} consumers, "
            f"{account.storage} bytes stored; streams wanted with {bus.replicas} replica(s) "
            f"({bus.cluster_size} server(s) known)",
        )
        # the replicas Frontdoor's components choose for this server or cluster (or
        # FRONTDOOR_NATS_REPLICAS), so a cluster's three replicas are no conflict
        streams = await describe_streams(bus.js, BusLimits(), bus.replicas)
        for stream, line in streams.items():
            report.add(f"stream {stream}", line.startswith("ok"), line)
        answers = await discover(bus, "PING")
        seen: dict[str, int] = {}
        for answer in answers:
            seen[str(answer.get("name"))] = seen.get(str(answer.get("name")), 0) + 1
        for name in registry.service_names():
            count = seen.pop(name, 0)
            report.add(
                f"service {name}",
                count > 0,
                f"{count} instance(s) answer $SRV.PING"
                if count
                else "no instance answers $SRV.PING (not started? `frontdoor serve " + name + "`)",
            )
        for name, count in sorted(seen.items()):
            report.add(f"service {name}", True, f"{count} instance(s) (not in the registry)")
    finally:
        await bus.close()
    return report
