"""Alembic environment of the management service.

Normally run programmatically (``Database.migrate``) with a connection passed in
``config.attributes["connection"]``. From the command line, the URL comes from the service
settings (``FRONTDOOR_MANAGEMENT_DATABASE_URL`` / ``FRONTDOOR_DATABASE_URL`` / the data dir).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from backend_services.management.database import VERSION_TABLE, create_engine
from backend_services.management.tables import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_settings() -> None:
    from backend_services.management.settings import ManagementSettings

    url = context.config.get_main_option("sqlalchemy.url") or (
        ManagementSettings().resolved_database_url()
    )
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")

_connection = context.config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:
    asyncio.run(_run_from_settings())
