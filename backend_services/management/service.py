"""The management service, ready to run: ``service`` with every handler and its start/stop hooks.

Start-up builds ``ManagementSettings`` from the environment (or takes the instance passed as the
runner's ``settings``), runs the Alembic migrations, makes the ``FRONTDOOR_ADMIN_IDENTITIES``
admins, and starts the SLA checker and the service registry.
"""

from __future__ import annotations

import uuid

from pydantic import SecretStr

from backend_services.management import handlers_tickets, handlers_users, ops, users_repo  # noqa: F401
from backend_services.management.core import STATE_KEY, ManagementState, service
from backend_services.management.database import Database
from backend_services.management.handlers_users import roles_changed_event
from backend_services.management.lifecycle import SlaPolicy
from backend_services.management.outbox import outbox_of
from backend_services.management.settings import ManagementSettings
from backend_services.management.sla import SLA_NAMESPACE, SlaChecker, system_event
from backend_services.runtime import ServiceContext
from backend_services.runtime.instances import refuse_a_second_sqlite_instance
from backend_services.runtime.outbox import OutboxRelay
from events.errors import StartupRefused

__all__ = ["bootstrap_admins", "service"]


def settings_from(ctx: ServiceContext) -> ManagementSettings:
    """The runner's settings when they are ``ManagementSettings``, else from the environment.

    Other settings objects given to the runner (e.g. the composition root's, with a data dir
    from the command line) fill ``data_dir``/``database_url`` where the environment did not.
    """
    if isinstance(ctx.settings, ManagementSettings):
        return ctx.settings
    settings = ManagementSettings()
    given = ctx.settings
    if given is not None:
        overrides: dict[str, object] = {}
        if "data_dir" not in settings.model_fields_set and getattr(given, "data_dir", None):
            overrides["data_dir"] = given.data_dir
        shared = getattr(given, "database_url", None)
        if settings.database_url is None and shared:
            overrides["database_url"] = (
                shared if isinstance(shared, SecretStr) else SecretStr(shared)
            )
        if overrides:
            settings = settings.model_copy(update=overrides)
    return settings


async def bootstrap_admins(st: ManagementState, ctx: ServiceContext) -> list[str]:
    """Make every ``FRONTDOOR_ADMIN_IDENTITIES`` identity an admin; return the changed handles."""
    changed: list[str] = []
    now = ctx.now()
    for channel, value in st.settings.admin_identity_list():
        async with st.db.write_session() as s:
            before_user = await users_repo.user_by_identity(s, channel, value)
            before = await users_repo.roles_of(s, before_user) if before_user else []
            user, did_change = await users_repo.ensure_admin_identity(s, channel, value, now)
            if not did_change:
                continue
            after = await users_repo.roles_of(s, user)
            type_, payload = await roles_changed_event(s, user, before, after)
            event_id = uuid.uuid5(SLA_NAMESPACE, f"bootstrap:{channel}:{value}:{','.join(after)}")
            await ctx.bus.publish(system_event(type_, payload, event_id))
            changed.append(user.handle)
    return changed


@service.on_startup
async def start(ctx: ServiceContext) -> None:
    """Open and migrate the database, bootstrap admins, start the background tasks."""
    settings = settings_from(ctx)
    db = Database(settings.resolved_database_url())
    if db.backend == "sqlite":
        try:
            await refuse_a_second_sqlite_instance(
                ctx, "FRONTDOOR_DATABASE_URL (or FRONTDOOR_MANAGEMENT_DATABASE_URL)"
            )
        except StartupRefused:
            await db.dispose()
            raise
    await db.migrate()
    st = ManagementState(
        settings=settings,
        db=db,
        sla=SlaPolicy(
            first_response_minutes={
                **_defaults(settings, "first"),
                **settings.management_sla_first_response_minutes,
            },
            resolution_minutes={
                **_defaults(settings, "resolution"),
                **settings.management_sla_resolution_minutes,
            },
        ),
        clock=ctx.now,
    )
    ctx.state[STATE_KEY] = st
    fetch, mark = outbox_of(db)
    st.relay = OutboxRelay(ctx.bus, fetch, mark, clock=ctx.now)
    await st.relay.start()
    await bootstrap_admins(st, ctx)
    st.checker = SlaChecker(db, ctx.bus, ctx.now, settings.management_sla_check_seconds)
    st.checker.start()
    if settings.management_ops_enabled:
        st.registry = ops.ServiceRegistry(ctx.bus)
        st.registry.start()


def _defaults(settings: ManagementSettings, which: str) -> dict[str, int]:
    from backend_services.management.settings import DEFAULT_FIRST_RESPONSE, DEFAULT_RESOLUTION

    return dict(DEFAULT_FIRST_RESPONSE if which == "first" else DEFAULT_RESOLUTION)


@service.on_shutdown
async def stop(ctx: ServiceContext) -> None:
    """Stop the background tasks and close the database."""
    st = ctx.state.pop(STATE_KEY, None)
    if not isinstance(st, ManagementState):
        return
    if st.relay:
        await st.relay.stop()
    if st.checker:
        await st.checker.stop()
    if st.registry:
        await st.registry.stop()
    await st.db.dispose()
