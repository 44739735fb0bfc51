"""Two marketing instances starting together on a fresh PostgreSQL database both come up: the
tables are created under an advisory lock. Found by `frontdoor bench chaos`, where the second
instance died on a unique violation of PostgreSQL's catalogue (both ran CREATE TABLE at once)."""

from __future__ import annotations

import asyncio

import pytest

from backend_services.marketing.store import MarketingStore
from frontdoor.chaos_stack import PostgresDatabase


@pytest.mark.postgres
async def test_instances_starting_together_on_a_new_database_both_start(
    postgres_url: str,
) -> None:
    database = PostgresDatabase(postgres_url.rsplit("/", 1)[0] + "/postgres")
    await database.create()
    try:
        stores = await asyncio.gather(*(MarketingStore.open(database.url) for _ in range(4)))
        for store in stores:
            await store.close()
    finally:
        await database.drop()
