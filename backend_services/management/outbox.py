"""Management's outbox: the processed requests whose events are not published yet."""

from __future__ import annotations

from datetime import datetime

from backend_services.management.database import Database
from backend_services.management.tables import ProcessedRequest
from backend_services.runtime.outbox import FetchUnpublished, MarkPublished
from backend_services.runtime.outbox_sql import fetch_unpublished, mark_published
from events.envelope import Envelope


def outbox_of(db: Database) -> tuple[FetchUnpublished, MarkPublished]:
    """``(fetch_unpublished, mark_published)`` for an ``OutboxRelay`` on ``db``."""

    async def fetch(older_than: datetime, limit: int) -> list[tuple[str, list[Envelope]]]:
        async with db.session() as s:
            return await fetch_unpublished(s, ProcessedRequest, older_than, limit)

    async def mark(request_ids: list[str], now: datetime) -> None:
        async with db.write_session() as s:
            await mark_published(s, ProcessedRequest, request_ids, now)

    return fetch, mark
