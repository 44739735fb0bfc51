"""The outbox's two statements over a SQLAlchemy table of processed requests.

Management and marketing each keep a ``ProcessedRequest`` table (request id, the recorded result
with the envelopes it emitted, when it was created and when its envelopes were published); the
``OutboxRelay`` reads and marks it through these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, Update, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend_services.runtime.outbox import envelopes_from_json
from events.envelope import Envelope

#: A mapped processed-requests table: ``request_id``, ``result`` (JSON with ``envelopes``),
#: ``created_at`` and ``published_at`` columns (SQLAlchemy's ``Mapped`` attributes are not
#: expressible as a typing Protocol, hence ``Any``).
ProcessedRequestTable = type[Any]


async def fetch_unpublished(
    session: AsyncSession, table: ProcessedRequestTable, older_than: datetime, limit: int
) -> list[tuple[str, list[Envelope]]]:
    """The entries of ``table`` created before ``older_than`` and not published, oldest first."""
    query: Select[Any] = (
        select(table.request_id, table.result)
        .where(table.published_at.is_(None), table.created_at < older_than)
        .order_by(table.created_at)
        .limit(limit)
    )
    rows = await session.execute(query)
    return [
        (request_id, envelopes_from_json((result or {}).get("envelopes")))
        for request_id, result in rows.all()
    ]


async def mark_published(
    session: AsyncSession, table: ProcessedRequestTable, request_ids: list[str], now: datetime
) -> None:
    """Mark the entries ``request_ids`` of ``table`` published at ``now``."""
    statement: Update = (
        update(table).where(table.request_id.in_(request_ids)).values(published_at=now)
    )
    await session.execute(statement)
