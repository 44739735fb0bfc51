"""Users, roles, identities and API keys in the database (the source of truth for roles)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend_services.management.errors import Conflict, NotFound
from backend_services.management.identities import (
    LINKABLE_ACTOR_PREFIXES,
    hash_api_key,
    new_api_key,
    parse_identity,
)
from backend_services.management.passwords import check_password, hash_password
from backend_services.management.schemas_users import ApiKeyOut, UserOut
from backend_services.management.tables import ApiKey, Identity, User, UserRole
from events.envelope import Actor

#: Roles stored per user; ``user`` is implicit for everyone.
STORED_ROLES = ("admin", "agent")
#: Actor ids of API-key callers look like ``user:<handle>``.
USER_ACTOR_PREFIX = "user:"


def effective_roles(stored: set[str] | list[str], active: bool = True) -> list[str]:
    """Stored roles plus the implicit ``user`` (a deactivated user keeps only ``user``)."""
    roles = {r for r in stored if r in STORED_ROLES} if active else set()
    return sorted(roles | {"user"})


async def find_user(s: AsyncSession, ref: str) -> User | None:
    """A user by handle, email, ``user:<handle>`` or identity ``channel:value``."""
    ref = ref.strip()
    if ref.startswith(USER_ACTOR_PREFIX):
        ref = ref[len(USER_ACTOR_PREFIX) :]
    if "@" in ref and ":" not in ref:
        return await s.scalar(select(User).where(func.lower(User.email) == ref.lower()))
    if ":" in ref:
        try:
            channel, value = parse_identity(ref)
        except ValueError:
            return None
        return await user_by_identity(s, channel, value)
    return await s.scalar(select(User).where(User.handle == ref.lower()))


async def get_user(s: AsyncSession, ref: str) -> User:
    """Like ``find_user`` but raise ``NotFound`` with a clear message."""
    user = await find_user(s, ref)
    if user is None:
        raise NotFound(f"There is no user '{ref}'.")
    return user


async def user_by_identity(s: AsyncSession, channel: str, value: str) -> User | None:
    """The user an identity belongs to."""
    if channel == "api":
        return await user_by_api_key(s, value)
    return await s.scalar(
        select(User).join(Identity).where(Identity.channel == channel, Identity.value == value)
    )


async def user_and_roles_by_identity(
    s: AsyncSession, channel: str, value: str
) -> tuple[User | None, list[str]]:
    """The user an identity belongs to and their effective roles, in one query."""
    rows = (
        await s.execute(
            select(User, UserRole.role)
            .join(Identity, Identity.user_id == User.id)
            .outerjoin(UserRole, UserRole.user_id == User.id)
            .where(Identity.channel == channel, Identity.value == value)
        )
    ).all()
    if not rows:
        return None, []
    user = rows[0][0]
    return user, effective_roles({role for _, role in rows if role}, user.active)


async def user_by_api_key(s: AsyncSession, key: str, now: datetime | None = None) -> User | None:
    """The owner of an unrevoked API key (records ``last_used_at`` when ``now`` is given)."""
    row = await s.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )
    if row is None:
        return None
    if now is not None:
        row.last_used_at = now
    return await s.get(User, row.user_id)


def linkable_identity(actor_id: str) -> tuple[str, str] | None:
    """``slack:U1`` -> ``("slack", "U1")``; ``None`` for ids no user can be linked to
    (guests, API-key users, components)."""
    kind, sep, value = actor_id.partition(":")
    if not sep or not value or kind not in LINKABLE_ACTOR_PREFIXES:
        return None
    return parse_identity(actor_id)


async def user_for_actor(s: AsyncSession, actor: Actor) -> User | None:
    """The user behind a verified actor: ``user:<handle>`` (API key), or a linked identity."""
    if actor.id.startswith(USER_ACTOR_PREFIX):
        return await s.scalar(select(User).where(User.handle == actor.id[len(USER_ACTOR_PREFIX) :]))
    identity = linkable_identity(actor.id)
    if identity is None:
        return None
    return await s.scalar(
        select(User)
        .join(Identity)
        .where(Identity.channel == identity[0], Identity.value == identity[1])
    )


async def stored_roles(s: AsyncSession, user_id: int) -> list[str]:
    """Roles stored for the user (without the implicit ``user``)."""
    rows = await s.scalars(select(UserRole.role).where(UserRole.user_id == user_id))
    return sorted(rows)


async def roles_of(s: AsyncSession, user: User) -> list[str]:
    """Effective roles of ``user``."""
    return effective_roles(await stored_roles(s, user.id), user.active)


async def user_out(s: AsyncSession, user: User, *, with_keys: bool = False) -> UserOut:
    """The output model of a user."""
    idents = await s.execute(
        select(Identity.channel, Identity.value)
        .where(Identity.user_id == user.id)
        .order_by(Identity.id)
    )
    keys: list[ApiKeyOut] = []
    if with_keys:
        for key in await s.scalars(
            select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id)
        ):
            keys.append(
                ApiKeyOut(
                    id=key.id,
                    name=key.name,
                    prefix=key.prefix,
                    created_at=key.created_at,
                    last_used_at=key.last_used_at,
                    revoked=key.revoked_at is not None,
                )
            )
    return UserOut(
        id=user.id,
        handle=user.handle,
        email=user.email,
        name=user.name,
        active=user.active,
        roles=await roles_of(s, user),
        identities=[f"{c}:{v}" for c, v in idents],
        api_keys=keys,
    )


async def _check_email_free(s: AsyncSession, email: str, user_id: int | None = None) -> None:
    other = await s.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if other is not None and other.id != user_id:
        raise Conflict(f"The email {email} already belongs to {other.handle}.")


async def create_user(
    s: AsyncSession,
    *,
    handle: str,
    now: datetime,
    email: str | None = None,
    name: str | None = None,
    roles: list[str] | None = None,
    identities: list[str] | None = None,
) -> User:
    """Insert a user with roles and identities (clear ``Conflict`` when something is taken)."""
    if await s.scalar(select(User.id).where(User.handle == handle)) is not None:
        raise Conflict(f"The handle '{handle}' is taken.")
    if email:
        await _check_email_free(s, email)
    user = User(
        handle=handle,
        email=email.lower() if email else None,
        name=name,
        active=True,
        created_at=now,
        updated_at=now,
    )
    s.add(user)
    await s.flush()
    for role in sorted(set(roles or []) & set(STORED_ROLES)):
        s.add(UserRole(user_id=user.id, role=role))
    for raw in identities or []:
        await link_identity(s, user, raw, now)
    await s.flush()
    return user


async def update_user(
    s: AsyncSession,
    user: User,
    now: datetime,
    *,
    name: str | None = None,
    email: str | None = None,
    active: bool | None = None,
) -> dict[str, list[object]]:
    """Apply the given changes; return ``field -> [old, new]``."""
    changes: dict[str, list[object]] = {}
    if name is not None and name != user.name:
        changes["name"] = [user.name, name]
        user.name = name
    if email is not None and email.lower() != (user.email or ""):
        await _check_email_free(s, email, user.id)
        changes["email"] = [user.email, email.lower()]
        user.email = email.lower()
    if active is not None and active != user.active:
        if not active and "admin" in await stored_roles(s, user.id):
            await ensure_other_admin(s, user)
        changes["active"] = [user.active, active]
        user.active = active
    if changes:
        user.updated_at = now
    return changes


async def ensure_other_admin(s: AsyncSession, user: User) -> None:
    others = await s.scalar(
        select(func.count())
        .select_from(UserRole)
        .join(User, User.id == UserRole.user_id)
        .where(UserRole.role == "admin", User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise Conflict(f"{user.handle} is the last active admin; make someone else admin first.")


async def set_roles(
    s: AsyncSession, user: User, roles: list[str], now: datetime
) -> tuple[list[str], list[str]]:
    """Replace the stored roles; return ``(old effective roles, new effective roles)``."""
    old = await stored_roles(s, user.id)
    new = sorted(set(roles) & set(STORED_ROLES))
    if "admin" in old and "admin" not in new:
        await ensure_other_admin(s, user)
    await s.execute(delete(UserRole).where(UserRole.user_id == user.id))
    for role in new:
        s.add(UserRole(user_id=user.id, role=role))
    user.updated_at = now
    await s.flush()
    return effective_roles(old, user.active), effective_roles(new, user.active)


async def add_role(s: AsyncSession, user: User, role: str) -> bool:
    """Give ``user`` a stored role; ``False`` when they had it already."""
    if role in await stored_roles(s, user.id):
        return False
    s.add(UserRole(user_id=user.id, role=role))
    await s.flush()
    return True


async def link_identity(s: AsyncSession, user: User, raw: str, now: datetime) -> str:
    """Map the identity ``channel:value`` to ``user`` (``Conflict`` if someone else has it)."""
    channel, value = parse_identity(raw)
    owner = await s.scalar(
        select(Identity).where(Identity.channel == channel, Identity.value == value)
    )
    if owner is not None:
        if owner.user_id == user.id:
            return f"{channel}:{value}"
        other = await s.get(User, owner.user_id)
        raise Conflict(f"{channel}:{value} already belongs to {other.handle if other else '?'}.")
    s.add(Identity(user_id=user.id, channel=channel, value=value, created_at=now))
    await s.flush()
    return f"{channel}:{value}"


async def unlink_identity(s: AsyncSession, user: User, raw: str) -> str:
    """Remove the identity from ``user`` (``NotFound`` if it is not theirs)."""
    channel, value = parse_identity(raw)
    result = await s.execute(
        delete(Identity).where(
            Identity.user_id == user.id, Identity.channel == channel, Identity.value == value
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"{user.handle} has no identity {channel}:{value}.")
    return f"{channel}:{value}"


async def list_users(
    s: AsyncSession, *, role: str | None = None, text: str | None = None, limit: int = 50
) -> list[User]:
    """Users by handle, optionally with a role or matching text."""
    query = select(User).order_by(User.handle).limit(limit)
    if role and role != "user":
        query = query.where(User.id.in_(select(UserRole.user_id).where(UserRole.role == role)))
    if text:
        like = f"%{text.lower()}%"
        query = query.where(
            or_(
                User.handle.like(like),
                func.lower(func.coalesce(User.name, "")).like(like),
                func.lower(func.coalesce(User.email, "")).like(like),
            )
        )
    return list(await s.scalars(query))


async def create_api_key(
    s: AsyncSession, user: User, name: str, now: datetime
) -> tuple[ApiKey, str]:
    """A new key for ``user``: returns the row and the plaintext key (stored only as a hash)."""
    key = new_api_key()
    row = ApiKey(
        user_id=user.id,
        name=name,
        key_hash=hash_api_key(key),
        prefix=key[:10],
        created_at=now,
    )
    s.add(row)
    await s.flush()
    return row, key


async def revoke_api_key(s: AsyncSession, key_id: int, now: datetime) -> ApiKey:
    """Mark a key revoked (``NotFound`` if there is no such key)."""
    row = await s.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"There is no API key {key_id}.")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


async def set_password(s: AsyncSession, user: User, password: str | None, now: datetime) -> None:
    """Store the Argon2id hash of ``password`` (``None`` removes it). Hashing takes tens of
    milliseconds of CPU, so it runs in a worker thread."""
    user.password_hash = await asyncio.to_thread(hash_password, password) if password else None
    user.updated_at = now


async def check_user_password(s: AsyncSession, ref: str, password: str) -> User | None:
    """The active user ``ref`` (handle or email) when ``password`` is theirs, else ``None``.

    Identities are not accepted here: a password signs in a person by handle or email only.
    """
    user = None if ":" in ref else await find_user(s, ref)
    stored = user.password_hash if user is not None and user.active else None
    ok = await asyncio.to_thread(check_password, stored, password)
    return user if ok else None


def handle_for_identity(channel: str, value: str) -> str:
    """A handle derived from an identity (``slack:U123`` -> ``slack-u123``)."""
    base = re.sub(r"[^a-z0-9._-]+", "-", f"{channel}-{value}".lower()).strip("-._")
    return base[:56] or channel


async def ensure_admin_identity(
    s: AsyncSession, channel: str, value: str, now: datetime
) -> tuple[User, bool]:
    """Make the identity an admin, creating its user when needed; ``True`` when it changed."""
    user = await user_by_identity(s, channel, value)
    if user is None:
        handle = base = handle_for_identity(channel, value)
        n = 1
        while await s.scalar(select(User.id).where(User.handle == handle)) is not None:
            n += 1
            handle = f"{base}-{n}"
        user = await create_user(
            s, handle=handle, now=now, roles=["admin"], identities=[f"{channel}:{value}"]
        )
        return user, True
    changed = await add_role(s, user, "admin")
    if not user.active:
        user.active, changed = True, True
    return user, changed
