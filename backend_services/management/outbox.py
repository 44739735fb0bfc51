"""Management's outbox: the processed requests whose events are not published yet."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from backend_services.management.database import Database
from backend_services.management.tables import ProcessedRequest
from backend_services.runtime.outbox import envelopes_from_json
from events.envelope import Envelope


def outbox_of(db: Database):  # type: ignore[no-untyped-def]
    """``(fetch_unpublished, mark_published)`` for an ``OutboxRelay`` on ``db``."""

    async def fetch_unpublished(
        older_than: datetime, limit: int
    ) -> list[tuple[str, list[Envelope]]]:
        async with db.session() as s:
            rows = await s.execute(
                select(ProcessedRequest.request_id, ProcessedRequest.result)
                .where(
                    ProcessedRequest.published_at.is_(None),
                    ProcessedRequest.created_at < older_than,
                )
                .order_by(ProcessedRequest.created_at)
                .limit(limit)
            )
            return [
                (request_id, envelopes_from_json((result or {}).get("envelopes")))
                for request_id, result in rows.all()
            ]

    async def mark_published(request_ids: list[str], now: datetime) -> None:
        async with db.write_session() as s:
            await s.execute(
                update(ProcessedRequest)
                .where(ProcessedRequest.request_id.in_(request_ids))
                .values(published_at=now)
            )

    return fetch_unpublished, mark_published
