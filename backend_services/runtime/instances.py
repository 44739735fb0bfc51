"""Services that keep a SQLite database run as one instance: a second one refuses to start."""

from __future__ import annotations

from backend_services.runtime.context import ServiceContext
from events.errors import StartupRefused
from events.micro import discover


async def refuse_a_second_sqlite_instance(ctx: ServiceContext, url_settings: str) -> None:
    """Raise ``StartupRefused`` when another instance of this service already runs: SQLite
    serves one process only, so several instances need PostgreSQL (``url_settings`` names the
    settings that choose the database)."""
    name = ctx.service
    others = await discover(ctx.bus, "PING", name)
    if others:
        raise StartupRefused(
            f"{len(others)} {name} instance(s) already run, and this one would use SQLite, "
            f"which serves one process only: to run several, set {url_settings} to a "
            "PostgreSQL database (postgresql+asyncpg://user:password@host/db)"
        )
