"""Storage: migrations build exactly the models' schema on SQLite and PostgreSQL; the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from typer.testing import CliRunner

from backend_services.management.database import VERSION_TABLE, Database, head_revision
from backend_services.management.settings import ManagementSettings
from backend_services.management.tables import Base


async def test_migrations_match_models_and_rerun_cleanly(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert await db.current_revision() is None
        await db.migrate()
        await db.migrate()  # a second start changes nothing
        assert await db.current_revision() == head_revision()
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
        # Only our version table is outside the models.
        assert [
            d for d in diffs if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)
        ] == []
    finally:
        await db.dispose()


def test_database_url_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("FRONTDOOR_MANAGEMENT_DATABASE_URL", "FRONTDOOR_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(tmp_path))
    assert ManagementSettings().resolved_database_url() == (
        f"sqlite+aiosqlite:///{tmp_path.resolve() / 'management.db'}"
    )
    monkeypatch.setenv("FRONTDOOR_DATABASE_URL", "postgresql+asyncpg://db/shared")
    assert ManagementSettings().resolved_database_url() == "postgresql+asyncpg://db/shared"
    monkeypatch.setenv("FRONTDOOR_MANAGEMENT_DATABASE_URL", "postgresql+asyncpg://db/mgmt")
    assert ManagementSettings().resolved_database_url() == "postgresql+asyncpg://db/mgmt"
    monkeypatch.setenv("FRONTDOOR_ADMIN_IDENTITIES", "slack:U1, site:alice")
    assert ManagementSettings().admin_identity_list() == [("slack", "U1"), ("site", "alice")]
    monkeypatch.setenv("FRONTDOOR_MANAGEMENT_SLA_FIRST_RESPONSE_MINUTES", '{"sometime": 5}')
    with pytest.raises(ValueError, match="unknown priorities"):
        ManagementSettings()


def test_settings_taken_from_the_composition_roots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from backend_services.management.service import settings_from

    for var in (
        "FRONTDOOR_MANAGEMENT_DATABASE_URL",
        "FRONTDOOR_DATABASE_URL",
        "FRONTDOOR_DATA_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    root = SimpleNamespace(data_dir=tmp_path / "root", database_url=None)
    ctx = SimpleNamespace(settings=root)
    assert settings_from(ctx).resolved_database_url().endswith("root/management.db")  # type: ignore[arg-type]
    root.database_url = "postgresql+asyncpg://db/shared"
    assert settings_from(ctx).resolved_database_url() == "postgresql+asyncpg://db/shared"  # type: ignore[arg-type]
    own = ManagementSettings(management_database_url="sqlite+aiosqlite:///x.db")
    assert settings_from(SimpleNamespace(settings=own)) is own  # type: ignore[arg-type]
    assert "x.db" not in repr(own)  # URLs (they may hold passwords) are secrets


def test_cli_users_add_list_and_api_key(tmp_path: Path) -> None:
    from frontdoor.cli import app, register_commands

    register_commands()
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    cli = CliRunner()
    env = {"FRONTDOOR_MANAGEMENT_DATABASE_URL": url}
    added = cli.invoke(
        app,
        ["users", "add", "slack:U123", "site:alice", "--role", "admin", "--handle", "alice"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    assert "created alice" in added.output and "roles admin, user" in added.output
    again = cli.invoke(app, ["users", "add", "slack:U123", "--role", "agent"], env=env)
    assert again.exit_code == 0 and "updated alice" in again.output
    assert "roles admin, agent, user" in again.output
    listed = cli.invoke(app, ["users", "list"], env=env)
    assert listed.exit_code == 0 and "alice" in listed.output
    key = cli.invoke(app, ["users", "api-key", "alice", "--name", "ops"], env=env)
    assert key.exit_code == 0 and "fdk_" in key.output
    bad = cli.invoke(app, ["users", "add", "U123"], env=env)
    assert bad.exit_code == 1 and "channel:id" in bad.output
    bad_role = cli.invoke(app, ["users", "add", "slack:U9", "--role", "boss"], env=env)
    assert bad_role.exit_code == 2
