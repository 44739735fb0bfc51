"""The processed requests become the outbox: when their events were published.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mgmt_processed_requests") as batch:
        batch.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_mgmt_processed_requests_published_at", "mgmt_processed_requests", ["published_at"]
    )
    # What was recorded before had its events published by then.
    op.execute(
        "UPDATE mgmt_processed_requests SET published_at = created_at WHERE published_at IS NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_mgmt_processed_requests_published_at", table_name="mgmt_processed_requests")
    with op.batch_alter_table("mgmt_processed_requests") as batch:
        batch.drop_column("published_at")
