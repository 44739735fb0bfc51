"""``frontdoor users``: manage people and roles straight in the management database.

For the first admin (before anyone can call the management service) and for operators:
``frontdoor users add slack:U123 --role admin``. Changes made here do not publish
``user.roles_changed`` (no bus is needed); the service resolves roles from the database, so they
take effect at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

users_app = typer.Typer(help="Users, roles and API keys of the management service.")
console = Console()


def register(app: typer.Typer) -> None:
    """Attach ``frontdoor users ...``."""
    app.add_typer(users_app, name="users")


async def _open(database_url: str | None):  # type: ignore[no-untyped-def]
    from backend_services.management.database import Database
    from backend_services.management.settings import ManagementSettings

    # FRONTDOOR_DATA_DIR / FRONTDOOR_DATABASE_URL as the service would read them.
    settings = ManagementSettings()
    db = Database(database_url or settings.resolved_database_url())
    await db.migrate()
    return db


async def _add(
    identities: list[str],
    roles: list[str],
    handle: str | None,
    email: str | None,
    name: str | None,
    database_url: str | None,
) -> str:
    from backend_services.management import users_repo as repo
    from backend_services.management.identities import parse_identity

    parsed = [parse_identity(raw) for raw in identities]
    now = datetime.now(UTC)
    db = await _open(database_url)
    try:
        async with db.session() as s, s.begin():
            user = None
            for channel, value in parsed:
                user = user or await repo.user_by_identity(s, channel, value)
            if user is None and handle:
                user = await repo.find_user(s, handle)
            if user is None:
                new_handle = handle or repo.handle_for_identity(*parsed[0])
                user = await repo.create_user(
                    s, handle=new_handle, now=now, email=email, name=name, roles=roles
                )
                verb = "created"
            else:
                await repo.update_user(s, user, now, name=name, email=email, active=True)
                for role in roles:
                    await repo.add_role(s, user, role)
                verb = "updated"
            for channel, value in parsed:
                await repo.link_identity(s, user, f"{channel}:{value}", now)
            out = await repo.user_out(s, user)
        return f"{verb} {out.reply_text()} Identities: {', '.join(out.identities) or 'none'}."
    finally:
        await db.dispose()


@users_app.command("add")
def add(
    identities: list[str] = typer.Argument(
        None, help="Identities such as slack:U123 or site:alice (linked to the user)"
    ),
    role: list[str] = typer.Option([], "--role", "-r", help="admin or agent (repeatable)"),
    handle: str | None = typer.Option(None, help="Handle (default: derived from the identity)"),
    email: str | None = typer.Option(None, help="Email address"),
    name: str | None = typer.Option(None, help="Display name"),
    database_url: str | None = typer.Option(
        None, envvar="FRONTDOOR_MANAGEMENT_DATABASE_URL", help="Management database URL"
    ),
) -> None:
    """Create or update a user, give roles and link identities (e.g. the first admin)."""
    from backend_services.management.errors import HandlerError

    bad_roles = sorted(set(role) - {"admin", "agent"})
    if bad_roles:
        raise typer.BadParameter(f"unknown roles {bad_roles}: use admin and/or agent")
    if not identities and not handle:
        raise typer.BadParameter("give at least one identity (slack:U123) or --handle")
    try:
        message = asyncio.run(_add(list(identities or []), role, handle, email, name, database_url))
    except (HandlerError, ValueError) as exc:
        console.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
        raise typer.Exit(1) from exc
    console.print(message)


async def _list(database_url: str | None) -> list:  # type: ignore[type-arg]
    from backend_services.management import users_repo as repo

    db = await _open(database_url)
    try:
        async with db.session() as s:
            return [await repo.user_out(s, u) for u in await repo.list_users(s, limit=500)]
    finally:
        await db.dispose()


@users_app.command("list")
def list_(
    database_url: str | None = typer.Option(
        None, envvar="FRONTDOOR_MANAGEMENT_DATABASE_URL", help="Management database URL"
    ),
) -> None:
    """Show every user with roles and identities."""
    table = Table("handle", "name", "email", "roles", "identities", "active")
    for u in asyncio.run(_list(database_url)):
        table.add_row(
            u.handle,
            u.name or "",
            u.email or "",
            ", ".join(u.roles),
            ", ".join(u.identities),
            "yes" if u.active else "no",
        )
    console.print(table)


async def _api_key(user_ref: str, key_name: str, database_url: str | None) -> str:
    from backend_services.management import users_repo as repo

    db = await _open(database_url)
    try:
        async with db.session() as s, s.begin():
            user = await repo.get_user(s, user_ref)
            row, key = await repo.create_api_key(s, user, key_name, datetime.now(UTC))
        return f"API key {row.id} '{row.name}' for {user.handle} (shown once, store it now):\n{key}"
    finally:
        await db.dispose()


@users_app.command("api-key")
def api_key(
    user: str = typer.Argument(..., help="Handle, email or identity of the key's owner"),
    key_name: str = typer.Option("cli", "--name", help="A label for the key"),
    database_url: str | None = typer.Option(
        None, envvar="FRONTDOOR_MANAGEMENT_DATABASE_URL", help="Management database URL"
    ),
) -> None:
    """Issue an API key (printed once; only its hash is stored)."""
    from backend_services.management.errors import HandlerError

    try:
        console.print(asyncio.run(_api_key(user, key_name, database_url)), soft_wrap=True)
    except HandlerError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


async def _set_password(user_ref: str, password: str | None, database_url: str | None) -> str:
    from backend_services.management import users_repo as repo

    db = await _open(database_url)
    try:
        async with db.session() as s, s.begin():
            user = await repo.get_user(s, user_ref)
            await repo.set_password(s, user, password, datetime.now(UTC))
            roles = await repo.roles_of(s, user)
        verb = "set" if password else "removed"
        note = (
            ""
            if {"agent", "admin"} & set(roles)
            else " (they have neither the agent nor the admin role: the workspace stays closed"
            " to them)"
        )
        return f"The password of {user.handle} is {verb}{note}."
    finally:
        await db.dispose()


@users_app.command("set-password")
def set_password(
    user: str = typer.Argument(..., help="Handle or email of the user"),
    remove: bool = typer.Option(False, "--remove", help="Remove the password instead"),
    database_url: str | None = typer.Option(
        None, envvar="FRONTDOOR_MANAGEMENT_DATABASE_URL", help="Management database URL"
    ),
) -> None:
    """Set a user's password for the agent workspace (/agent): prompted twice, never echoed;
    only its Argon2id hash is stored."""
    from backend_services.management.errors import HandlerError
    from backend_services.management.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS

    password: str | None = None
    if not remove:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            console.print(
                f"[red]error:[/red] a password has {MIN_PASSWORD_CHARS} to "
                f"{MAX_PASSWORD_CHARS} characters"
            )
            raise typer.Exit(1)
    try:
        console.print(asyncio.run(_set_password(user, password, database_url)))
    except HandlerError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


@users_app.command("create")
def create(
    handle: str = typer.Argument(..., help="Handle of the new user, e.g. alice"),
    roles: str = typer.Option("", "--roles", help="Comma-separated: agent, admin"),
    email: str | None = typer.Option(None, help="Email address"),
    name: str | None = typer.Option(None, help="Display name"),
    identity: list[str] = typer.Option([], "--identity", help="e.g. slack:U123 (repeatable)"),
    database_url: str | None = typer.Option(
        None, envvar="FRONTDOOR_MANAGEMENT_DATABASE_URL", help="Management database URL"
    ),
) -> None:
    """Create (or update) a user by handle, e.g. an agent for the workspace:
    ``frontdoor users create alice --roles agent``, then ``frontdoor users set-password alice``."""
    role = [r.strip().lower() for r in roles.replace(" ", ",").split(",") if r.strip()]
    add(identity, role, handle, email, name, database_url)
