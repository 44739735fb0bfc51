"""Index the processed request ids by time: the SLA checker prunes old ones every round.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_mgmt_processed_requests_created_at", "mgmt_processed_requests", ["created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_mgmt_processed_requests_created_at", table_name="mgmt_processed_requests")
