"""Initial schema: users, roles, identities, API keys, tickets, tags, comments, history.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "mgmt_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("handle", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.PrimaryKeyConstraint("id", name="pk_mgmt_users"),
        sa.UniqueConstraint("handle", name="uq_mgmt_users_handle"),
        sa.UniqueConstraint("email", name="uq_mgmt_users_email"),
    )
    op.create_table(
        "mgmt_user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["mgmt_users.id"],
            name="fk_mgmt_user_roles_user_id_mgmt_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role", name="pk_mgmt_user_roles"),
    )
    op.create_table(
        "mgmt_identities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
        _ts("created_at", False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["mgmt_users.id"],
            name="fk_mgmt_identities_user_id_mgmt_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mgmt_identities"),
        sa.UniqueConstraint("channel", "value", name="uq_mgmt_identities_channel_value"),
    )
    op.create_index("ix_mgmt_identities_user_id", "mgmt_identities", ["user_id"])
    op.create_table(
        "mgmt_api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        _ts("created_at", False),
        _ts("last_used_at"),
        _ts("revoked_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["mgmt_users.id"],
            name="fk_mgmt_api_keys_user_id_mgmt_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mgmt_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_mgmt_api_keys_key_hash"),
    )
    op.create_index("ix_mgmt_api_keys_user_id", "mgmt_api_keys", ["user_id"])
    op.create_table(
        "mgmt_tickets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("requester_email", sa.String(320), nullable=False),
        sa.Column("requester_name", sa.String(200), nullable=True),
        sa.Column("requester_user_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(300), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("conversation_id", sa.String(256), nullable=False),
        sa.Column("thread", sa.String(256), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("csat_score", sa.Integer(), nullable=True),
        sa.Column("csat_comment", sa.Text(), nullable=True),
        _ts("created_at", False),
        _ts("updated_at", False),
        _ts("first_response_due_at", False),
        _ts("resolution_due_at", False),
        _ts("first_responded_at"),
        _ts("solved_at"),
        _ts("closed_at"),
        _ts("first_response_breached_at"),
        _ts("resolution_breached_at"),
        sa.ForeignKeyConstraint(
            ["requester_user_id"],
            ["mgmt_users.id"],
            name="fk_mgmt_tickets_requester_user_id_mgmt_users",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["mgmt_users.id"],
            name="fk_mgmt_tickets_assignee_id_mgmt_users",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["mgmt_tickets.id"],
            name="fk_mgmt_tickets_merged_into_id_mgmt_tickets",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mgmt_tickets"),
    )
    op.create_index("ix_mgmt_tickets_status_priority", "mgmt_tickets", ["status", "priority"])
    op.create_index("ix_mgmt_tickets_requester_email", "mgmt_tickets", ["requester_email"])
    op.create_index("ix_mgmt_tickets_assignee_id", "mgmt_tickets", ["assignee_id"])
    op.create_table(
        "mgmt_ticket_tags",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["mgmt_tickets.id"],
            name="fk_mgmt_ticket_tags_ticket_id_mgmt_tickets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "tag", name="pk_mgmt_ticket_tags"),
    )
    op.create_table(
        "mgmt_ticket_comments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(300), nullable=False),
        sa.Column("author_name", sa.String(256), nullable=True),
        sa.Column("author_is_staff", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        _ts("created_at", False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["mgmt_tickets.id"],
            name="fk_mgmt_ticket_comments_ticket_id_mgmt_tickets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mgmt_ticket_comments"),
    )
    op.create_index("ix_mgmt_ticket_comments_ticket_id", "mgmt_ticket_comments", ["ticket_id"])
    op.create_table(
        "mgmt_ticket_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        _ts("at", False),
        sa.Column("actor_id", sa.String(300), nullable=False),
        sa.Column("actor_name", sa.String(256), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["mgmt_tickets.id"],
            name="fk_mgmt_ticket_history_ticket_id_mgmt_tickets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mgmt_ticket_history"),
    )
    op.create_index("ix_mgmt_ticket_history_ticket_id", "mgmt_ticket_history", ["ticket_id"])
    op.create_table(
        "mgmt_processed_requests",
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        _ts("created_at", False),
        sa.PrimaryKeyConstraint("request_id", name="pk_mgmt_processed_requests"),
    )


def downgrade() -> None:
    for table in (
        "mgmt_processed_requests",
        "mgmt_ticket_history",
        "mgmt_ticket_comments",
        "mgmt_ticket_tags",
        "mgmt_tickets",
        "mgmt_api_keys",
        "mgmt_identities",
        "mgmt_user_roles",
        "mgmt_users",
    ):
        op.drop_table(table)
