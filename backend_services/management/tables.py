"""The management service's tables (SQLAlchemy 2 ORM). Names carry ``mgmt_`` so the service
can share a database with others. The schema is created by the Alembic migrations, never by
``create_all``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend_services.runtime.sql import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with the service's own metadata and constraint names."""

    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person known to Frontdoor, with roles."""

    __tablename__ = "mgmt_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handle: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Argon2id hash of the user's password (the agent workspace's sign-in), if one is set
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserRole(Base):
    """One role of a user (``admin``, ``agent``; everyone is implicitly ``user``)."""

    __tablename__ = "mgmt_user_roles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("mgmt_users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class Identity(Base):
    """A channel identity (Slack user id, web identity, email) that maps to a user."""

    __tablename__ = "mgmt_identities"
    __table_args__ = (
        UniqueConstraint("channel", "value", name="uq_mgmt_identities_channel_value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("mgmt_users.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """An API key of a user; only its SHA-256 hash is stored."""

    __tablename__ = "mgmt_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("mgmt_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Ticket(Base):
    """A support ticket; ``id`` is the number users see (``#42``)."""

    __tablename__ = "mgmt_tickets"
    __table_args__ = (
        Index("ix_mgmt_tickets_status_priority", "status", "priority"),
        Index("ix_mgmt_tickets_requester_email", "requester_email"),
        Index("ix_mgmt_tickets_assignee_id", "assignee_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    requester_email: Mapped[str] = mapped_column(String(320))
    requester_name: Mapped[str | None] = mapped_column(String(200))
    requester_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("mgmt_users.id", ondelete="SET NULL")
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("mgmt_users.id", ondelete="SET NULL")
    )
    #: ``channel:actor id`` of whoever opened it (ownership for unregistered requesters).
    created_by: Mapped[str] = mapped_column(String(300))
    channel: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[str] = mapped_column(String(256))
    thread: Mapped[str | None] = mapped_column(String(256))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("mgmt_tickets.id", ondelete="SET NULL")
    )
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_response_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolution_due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TicketTag(Base):
    """A tag on a ticket."""

    __tablename__ = "mgmt_ticket_tags"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("mgmt_tickets.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class TicketComment(Base):
    """A public reply or an internal note on a ticket."""

    __tablename__ = "mgmt_ticket_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("mgmt_tickets.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[str] = mapped_column(String(300))
    author_name: Mapped[str | None] = mapped_column(String(256))
    author_is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketHistory(Base):
    """One change to a ticket: who, when, what (field -> [old, new])."""

    __tablename__ = "mgmt_ticket_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("mgmt_tickets.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[str] = mapped_column(String(300))
    actor_name: Mapped[str | None] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class ProcessedRequest(Base):
    """An intent already applied (its envelope id), with what it produced.

    Written in the same transaction as the change, so a redelivered intent is recognised and
    only its events are published again (their ids are deterministic, the bus drops repeats).
    It is also the outbox: ``result`` holds the events as whole envelopes
    (``{"envelopes": [...], "message": str, ...}``) and ``published_at`` stays empty until they
    were published, so a publish lost after the commit is made by the relay
    (``backend_services.runtime.outbox``).
    """

    __tablename__ = "mgmt_processed_requests"
    __table_args__ = (
        Index("ix_mgmt_processed_requests_created_at", "created_at"),
        Index("ix_mgmt_processed_requests_published_at", "published_at"),
    )

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
