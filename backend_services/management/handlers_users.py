"""Users, roles, identities and API keys (admins), and ``resolve_actor`` (the front door)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backend_services.management import users_repo as repo
from backend_services.management.core import (
    ANONYMOUS_ACTOR_ID,
    Applied,
    apply_once,
    service,
    state_of,
)
from backend_services.management.domain_events import PrivacyErased, UserRolesChanged
from backend_services.management.erasure import Erased, erase_person, find_person, plan_erasure
from backend_services.management.errors import Denied, HandlerError
from backend_services.management.lifecycle import ADMIN, ANYONE, SYSTEM
from backend_services.management.schemas_users import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRevoke,
    ApiKeyRevoked,
    IdentityLink,
    NoInput,
    PasswordChanged,
    PasswordCheck,
    PasswordSet,
    PersonErase,
    PersonErased,
    ResolveActor,
    ResolvedActor,
    UserCreate,
    UserList,
    UserOut,
    UserRef,
    UserSearch,
    UserSetRoles,
    UserUpdate,
)
from backend_services.management.tables import User
from backend_services.management.tickets_repo import Caller
from backend_services.runtime import HandlerContext


async def roles_changed_event(
    s: AsyncSession, user: User, old: list[str], new: list[str]
) -> tuple[str, dict]:
    """``(type, payload)`` of ``user.roles_changed``."""
    out = await repo.user_out(s, user)
    payload = UserRolesChanged(
        user=user.handle, user_id=user.id, old_roles=old, new_roles=new, identities=out.identities
    )
    return "user.roles_changed", payload.model_dump(mode="json")


async def _user_out(ctx: HandlerContext, applied: Applied, *, with_keys: bool = False) -> UserOut:
    assert applied.user_id is not None
    async with state_of(ctx).db.session() as s:
        user = await s.get(User, applied.user_id)
        if user is None:
            raise HandlerError("That user no longer exists.")
        out = await repo.user_out(s, user, with_keys=with_keys)
    return out.model_copy(update={"message": applied.message})


@service.handler("user_create", roles=ADMIN, summary="Register a user with roles and identities")
async def user_create(payload: UserCreate, ctx: HandlerContext) -> UserOut:
    """A new user; emits ``user.roles_changed`` (from nothing to the new roles)."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        user = await repo.create_user(
            s,
            handle=payload.handle,
            now=now,
            email=str(payload.email) if payload.email else None,
            name=payload.name,
            roles=list(payload.roles),
            identities=payload.identities,
        )
        new = await repo.roles_of(s, user)
        return Applied(
            user_id=user.id,
            message=f"Created user {user.handle}.",
            events=[await roles_changed_event(s, user, [], new)],
        )

    return await _user_out(ctx, await apply_once(ctx, change))


@service.handler("user_get", roles=ADMIN, summary="Show a user with identities and API keys")
async def user_get(payload: UserRef, ctx: HandlerContext) -> UserOut:
    """By handle, email or identity."""
    async with state_of(ctx).db.session() as s:
        return await repo.user_out(s, await repo.get_user(s, payload.user), with_keys=True)


@service.handler("user_list", roles=ADMIN, summary="List users")
async def user_list(payload: UserSearch, ctx: HandlerContext) -> UserList:
    """Optionally only those with a role, or matching a text."""
    async with state_of(ctx).db.session() as s:
        users = await repo.list_users(s, role=payload.role, text=payload.text, limit=payload.limit)
        return UserList(users=[await repo.user_out(s, u) for u in users])


@service.handler("user_update", roles=ADMIN, summary="Change a user's name, email or active flag")
async def user_update(payload: UserUpdate, ctx: HandlerContext) -> UserOut:
    """Deactivating a user drops their roles to plain ``user`` (emits ``user.roles_changed``)."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        user = await repo.get_user(s, payload.user)
        before = await repo.roles_of(s, user)
        changes = await repo.update_user(
            s,
            user,
            now,
            name=payload.name,
            email=str(payload.email) if payload.email else None,
            active=payload.active,
        )
        if not changes:
            raise HandlerError(f"Nothing to change for {user.handle}.")
        after = await repo.roles_of(s, user)
        events = [await roles_changed_event(s, user, before, after)] if before != after else []
        return Applied(
            user_id=user.id,
            message=f"Updated {', '.join(sorted(changes))} of {user.handle}.",
            events=events,
        )

    return await _user_out(ctx, await apply_once(ctx, change))


@service.handler("user_set_roles", roles=ADMIN, summary="Replace a user's roles")
async def user_set_roles(payload: UserSetRoles, ctx: HandlerContext) -> UserOut:
    """Roles ``admin``/``agent`` (everyone is ``user``); the last admin cannot be removed."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        user = await repo.get_user(s, payload.user)
        old, new = await repo.set_roles(s, user, list(payload.roles), now)
        if old == new:
            raise HandlerError(f"{user.handle} already has the roles {', '.join(new)}.")
        return Applied(
            user_id=user.id,
            message=f"Roles of {user.handle}: {', '.join(new)}.",
            events=[await roles_changed_event(s, user, old, new)],
        )

    return await _user_out(ctx, await apply_once(ctx, change))


@service.handler("user_link_identity", roles=ADMIN, summary="Map an identity to a user")
async def user_link_identity(payload: IdentityLink, ctx: HandlerContext) -> UserOut:
    """E.g. ``slack:U123``; the identity now resolves to this user's roles."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        user = await repo.get_user(s, payload.user)
        if await repo.find_user(s, payload.identity) is user:
            raise HandlerError(f"{payload.identity} is already linked to {user.handle}.")
        await repo.link_identity(s, user, payload.identity, now)
        roles = await repo.roles_of(s, user)
        return Applied(
            user_id=user.id,
            message=f"Linked {payload.identity} to {user.handle}.",
            # The identity went from plain ``user`` to this user's roles.
            events=[await roles_changed_event(s, user, ["user"], roles)],
        )

    return await _user_out(ctx, await apply_once(ctx, change))


@service.handler("user_unlink_identity", roles=ADMIN, summary="Remove an identity from a user")
async def user_unlink_identity(payload: IdentityLink, ctx: HandlerContext) -> UserOut:
    """The identity becomes unknown again (plain ``user``)."""

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        user = await repo.get_user(s, payload.user)
        await repo.unlink_identity(s, user, payload.identity)
        roles = await repo.roles_of(s, user)
        return Applied(
            user_id=user.id,
            message=f"Unlinked {payload.identity} from {user.handle}.",
            events=[await roles_changed_event(s, user, roles, ["user"])],
        )

    return await _user_out(ctx, await apply_once(ctx, change))


@service.handler("api_key_create", roles=ADMIN, summary="Issue an API key (HTTP/request door)")
async def api_key_create(payload: ApiKeyCreate, ctx: HandlerContext) -> ApiKeyCreated:
    """The key is answered once and stored only as a hash.

    Refused on the intent door (chat and the headless intents API): those answers are kept on
    the event bus, and a key must not be.
    """
    if ctx.door != "request":
        raise Denied(
            "API keys are issued only on the services' HTTP door (/services/management/"
            "api_key_create) or a direct request (or with the 'frontdoor users' CLI), never in a "
            "chat or the intents API: those answers are kept on the event bus."
        )
    st = state_of(ctx)
    async with st.db.write_session() as s:
        user = await repo.get_user(s, payload.user)
        row, key = await repo.create_api_key(s, user, payload.name, ctx.now())
        return ApiKeyCreated(id=row.id, user=user.handle, name=row.name, prefix=row.prefix, key=key)


@service.handler("api_key_revoke", roles=ADMIN, summary="Revoke an API key")
async def api_key_revoke(payload: ApiKeyRevoke, ctx: HandlerContext) -> ApiKeyRevoked:
    """The key stops working at once."""
    async with state_of(ctx).db.write_session() as s:
        row = await repo.revoke_api_key(s, payload.key_id, ctx.now())
        user = await s.get(User, row.user_id)
        return ApiKeyRevoked(id=row.id, user=user.handle if user else "?", name=row.name)


@service.handler(
    "user_set_password", roles=ADMIN, summary="Set a user's workspace password (HTTP/request door)"
)
async def user_set_password(payload: PasswordSet, ctx: HandlerContext) -> PasswordChanged:
    """Only the Argon2id hash is stored. Refused on the intent door: intents are kept on the
    bus, and a password must not be."""
    if ctx.door != "request":
        raise Denied(
            "Passwords are set only on the services' HTTP door (/services/management/"
            "user_set_password), a direct request or 'frontdoor users set-password', never in a "
            "chat or the intents API: those are kept on the event bus."
        )
    async with state_of(ctx).db.write_session() as s:
        user = await repo.get_user(s, payload.user)
        await repo.set_password(s, user, payload.password, ctx.now())
        return PasswordChanged(user=user.handle, has_password=payload.password is not None)


@service.handler(
    "user_erase", roles=ADMIN, summary="Erase a person: tickets, comments, user record"
)
async def user_erase(payload: PersonErase, ctx: HandlerContext) -> PersonErased:
    """Deletes the tickets the person requested (with their comments, tags and history) and
    their comments elsewhere, anonymises their name in other tickets' history, and deletes their
    user record (roles, identities, API keys, password). Publishes one ``privacy.erased``
    (counts and the erasure's reference only) and, for a user, ``user.roles_changed`` (so every
    gateway forgets their cached roles). The last active admin cannot be erased. A dry run
    answers the counts and changes nothing."""
    reference = payload.reference or ctx.envelope.id.hex[:16]
    if payload.dry_run:
        async with state_of(ctx).db.session() as s:
            person = await find_person(s, payload.person)
            if person.user is not None and "admin" in await repo.stored_roles(s, person.user.id):
                await repo.ensure_other_admin(s, person.user)
            planned = await plan_erasure(s, person)
        return _erased(planned, reference, dry_run=True)

    async def change(s: AsyncSession, caller: Caller, now: datetime) -> Applied:
        person = await find_person(s, payload.person)
        events: list[tuple[str, dict]] = []
        if person.user is not None:
            out = await repo.user_out(s, person.user)
            if "admin" in out.roles:
                await repo.ensure_other_admin(s, person.user)
            events.append(await roles_changed_event(s, person.user, out.roles, []))
        erased = await erase_person(s, person)
        audit = PrivacyErased(
            what=erased.what,  # type: ignore[arg-type]  # one of the three, by construction
            reference=reference,
            tickets=erased.tickets,
            comments=erased.comments,
            anonymised=erased.anonymised,
            user_record=erased.user_record,
            conversations=payload.conversations,
            events=payload.events,
        )
        events.append(("privacy.erased", audit.model_dump(mode="json")))
        applied = Applied(message=_erased(erased, reference).message, events=events)
        applied.out = _erased(erased, reference)
        return applied

    applied = await apply_once(ctx, change)
    if isinstance(applied.out, PersonErased):
        return applied.out
    return PersonErased(message=applied.message or "Erased.", reference=reference)


def _erased(erased: Erased, reference: str, *, dry_run: bool = False) -> PersonErased:
    who = {"user": "a user record", "guest": "a guest", "requester": "a requester"}[erased.what]
    verb = "Would erase" if dry_run else "Erased"
    return PersonErased(
        message=(
            f"{verb} {who}, {erased.tickets} ticket(s) and {erased.comments} other comment(s); "
            f"{erased.anonymised} other record(s) anonymised (reference {reference})."
        ),
        what=erased.what,
        dry_run=dry_run,
        tickets=erased.tickets,
        comments=erased.comments,
        anonymised=erased.anonymised,
        user_record=erased.user_record,
        ticket_numbers=erased.ticket_numbers,
        reference=reference,
    )


@service.handler(
    "check_password",
    roles=SYSTEM,
    internal=True,
    summary="Sign-in: the user and roles a handle and password prove",
)
async def check_password(payload: PasswordCheck, ctx: HandlerContext) -> ResolvedActor:
    """The gateway's (agent workspace sign-in): ``known`` true with the user's actor
    (``user:<handle>``) and roles when the password is right; ``known`` false otherwise (an
    unknown user, a deactivated one, a wrong or unset password look the same)."""
    async with state_of(ctx).db.session() as s:
        user = await repo.check_user_password(s, payload.user, payload.password)
        if user is None:
            return ResolvedActor(actor_id=ANONYMOUS_ACTOR_ID, known=False, roles=GUEST_ROLES)
        return _known(f"{repo.USER_ACTOR_PREFIX}{user.handle}", user, await repo.roles_of(s, user))


#: Roles of an actor nobody identified (a widget or REST guest, an anonymous API caller).
GUEST_ROLES = ["guest"]


async def resolve_key(s: AsyncSession, key: str, now: datetime) -> ResolvedActor:
    """The user of an API key (recording its use); unknown or revoked: ``known`` false."""
    user = await repo.user_by_api_key(s, key, now)
    if user is None:
        return ResolvedActor(actor_id=ANONYMOUS_ACTOR_ID, known=False, roles=GUEST_ROLES)
    return _known(f"{repo.USER_ACTOR_PREFIX}{user.handle}", user, await repo.roles_of(s, user))


async def resolve(s: AsyncSession, actor_id: str) -> ResolvedActor:
    """The roles of a proven actor id: guests ``guest``, unknown people ``user``."""
    identity = repo.linkable_identity(actor_id)
    if identity is None:
        if actor_id.startswith(repo.USER_ACTOR_PREFIX):
            user = await repo.find_user(s, actor_id)
            if user is not None:
                return _known(actor_id, user, await repo.roles_of(s, user))
        return ResolvedActor(actor_id=actor_id, known=False, roles=GUEST_ROLES)
    user, roles = await repo.user_and_roles_by_identity(s, *identity)
    if user is None:
        return ResolvedActor(actor_id=actor_id, known=False, roles=["user"])
    return _known(actor_id, user, roles)


def _known(actor_id: str, user: User, roles: list[str]) -> ResolvedActor:
    return ResolvedActor(
        actor_id=actor_id,
        known=True,
        user=user.handle,
        name=user.name,
        email=user.email,
        roles=roles,
    )


@service.handler(
    "resolve_actor", roles=SYSTEM, internal=True, summary="Roles of a proven actor or API key"
)
async def resolve_actor(payload: ResolveActor, ctx: HandlerContext) -> ResolvedActor:
    """The gateway's: the roles to sign into an actor's claims. Never on a public door."""
    db = state_of(ctx).db
    if payload.actor is not None:
        # An actor is only read: no write transaction (nor its commit) needed.
        async with db.session() as s:
            return await resolve(s, payload.actor)
    assert payload.api_key is not None
    async with db.write_session() as s:  # records the key's last use
        return await resolve_key(s, payload.api_key, ctx.now())


@service.handler("whoami", roles=ANYONE, summary="Who am I and which roles do I have?")
async def whoami(payload: NoInput, ctx: HandlerContext) -> ResolvedActor:
    """The caller's own user and roles as management knows them."""
    async with state_of(ctx).db.session() as s:
        user = await repo.user_for_actor(s, ctx.actor)
        if user is None:
            return ResolvedActor(
                actor_id=ctx.actor.id, known=False, roles=sorted(ctx.actor.roles) or GUEST_ROLES
            )
        return _known(ctx.actor.id, user, await repo.roles_of(s, user))
