"""Users and roles: bootstrap admins, resolve_actor, user.roles_changed, API keys."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from backend_services.management.core import STATE_KEY
from backend_services.management.identities import hash_api_key
from backend_services.management.service import service
from backend_services.management.tables import ApiKey
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from events.claims import system_actor
from events.micro import ServiceClient
from events.payloads import Reply
from tests.claims import TEST_ISSUER, signed_runner
from tests.services.management.conftest import ADMIN, AGENT, USER, FakeClock, ask, events_of
from tests.services.management.test_mgmt_doors import api_envelope, micro
from tests.services.management.test_mgmt_tickets import make_agent


async def _resolve_actor(bus: Bus, payload: dict) -> Reply:
    """``resolve_actor`` as the gateway asks it: a request signed as ``system:gateway``."""
    client = ServiceClient(bus, TEST_ISSUER)
    return await client.call("management", "resolve_actor", payload, system_actor("gateway"))


async def resolve(bus: Bus, actor_id: str) -> dict:
    reply = await _resolve_actor(bus, {"actor": actor_id})
    assert reply.status == "ok", reply
    return reply.data


async def resolve_key(bus: Bus, key: str) -> dict:
    reply = await _resolve_actor(bus, {"api_key": key})
    assert reply.status == "ok", reply
    return reply.data


async def test_bootstrap_admin_and_resolve_actor(bus: Bus, runner: ServiceRunner) -> None:
    # FRONTDOOR_ADMIN_IDENTITIES=slack:UADMIN made that identity an admin at start-up.
    admin = await resolve(bus, "slack:UADMIN")
    assert admin["known"] and admin["roles"] == ["admin", "user"]
    assert admin["user"] == "slack-uadmin" and admin["actor_id"] == "slack:UADMIN"
    boot = await events_of(bus, "user.roles_changed")
    assert [(e.payload["user"], e.payload["new_roles"]) for e in boot] == [
        ("slack-uadmin", ["admin", "user"])
    ]
    stranger = await resolve(bus, "site:someone")
    assert stranger == {
        "actor_id": "site:someone",
        "known": False,
        "user": None,
        "name": None,
        "email": None,
        "roles": ["user"],
    }
    # Guests (and anything that names no linkable identity) are guests, never looked up.
    guest = await resolve(bus, "guest:w-" + "0" * 32)
    assert guest["roles"] == ["guest"] and guest["known"] is False
    assert (await resolve(bus, "fax:1"))["roles"] == ["guest"]
    neither = await _resolve_actor(bus, {})
    assert neither.status == "invalid"

    await make_agent(bus)
    agent = await resolve(bus, "slack:UAGENT")
    assert agent["roles"] == ["agent", "user"] and agent["email"] == "andy@example.com"

    # Roles change -> the event, and resolve_actor answers the new roles at once.
    start = await bus.last_sequence()
    changed = await ask(bus, "user_set_roles", {"user": "andy", "roles": ["agent", "admin"]}, ADMIN)
    assert changed.status == "ok" and changed.data["roles"] == ["admin", "agent", "user"]
    events = await events_of(bus, "user.roles_changed", start + 1)
    assert len(events) == 1
    assert events[0].payload == {
        "user": "andy",
        "user_id": 2,
        "old_roles": ["agent", "user"],
        "new_roles": ["admin", "agent", "user"],
        "identities": ["slack:UAGENT"],
    }
    assert (await resolve(bus, "slack:UAGENT"))["roles"] == ["admin", "agent", "user"]

    # Link a site identity; deactivating the user drops them to plain ``user``.
    linked = await ask(bus, "user_link_identity", {"user": "andy", "identity": "site:andy"}, ADMIN)
    assert linked.status == "ok" and "site:andy" in linked.data["identities"]
    taken = await ask(
        bus, "user_link_identity", {"user": "slack-uadmin", "identity": "site:andy"}, ADMIN
    )
    assert taken.status == "invalid" and taken.text == "site:andy already belongs to andy."
    # A guest (web or REST visitor) can never be linked to anyone.
    for guest_identity in ("web:w-" + "0" * 32, "rest:someone", "guest:w-" + "0" * 32):
        refused = await ask(
            bus, "user_link_identity", {"user": "andy", "identity": guest_identity}, ADMIN
        )
        assert refused.status == "invalid", guest_identity
    off = await ask(bus, "user_update", {"user": "andy", "active": False}, ADMIN)
    assert off.status == "ok" and off.data["roles"] == ["user"]
    assert (await resolve(bus, "site:andy"))["roles"] == ["user"]

    whoami = await ask(bus, "whoami", {}, ADMIN)
    assert whoami.data["user"] == "slack-uadmin" and "admin" in whoami.data["roles"]


async def test_last_admin_and_admin_only_actions(bus: Bus, runner: ServiceRunner) -> None:
    last = await ask(bus, "user_set_roles", {"user": "slack:UADMIN", "roles": []}, ADMIN)
    assert last.status == "invalid"
    assert last.text == "slack-uadmin is the last active admin; make someone else admin first."
    refused = await ask(bus, "user_set_roles", {"user": "slack:UADMIN", "roles": []}, AGENT)
    assert refused.status == "denied" and "needs one of the roles: admin" in refused.text
    bad_role = await ask(bus, "user_create", {"handle": "bob", "roles": ["boss"]}, ADMIN)
    assert bad_role.status == "invalid" and bad_role.errors[0]["loc"][0] == "roles"
    bad_ident = await ask(bus, "user_create", {"handle": "bob", "identities": ["U1"]}, ADMIN)
    assert bad_ident.status == "invalid" and "channel:id" in bad_ident.text
    dup = await ask(bus, "user_create", {"handle": "slack-uadmin"}, ADMIN)
    assert dup.status == "invalid" and dup.text == "The handle 'slack-uadmin' is taken."


async def test_api_keys_hashed_revocable_and_not_in_chat(
    bus: Bus, runner: ServiceRunner, tmp_path: Path, clock: FakeClock
) -> None:
    in_chat = await ask(bus, "api_key_create", {"user": "slack:UADMIN"}, ADMIN)
    assert in_chat.status == "denied" and "never in a chat" in in_chat.text
    created = await micro(
        bus,
        "api_key_create",
        api_envelope("api_key_create", {"user": "slack:UADMIN", "name": "ci"}),
    )
    key = created.data["key"]
    assert key.startswith("fdk_") and len(key) > 40
    st = runner.context.state[STATE_KEY]
    async with st.db.session() as s:
        rows = list(await s.scalars(select(ApiKey)))
    assert [r.key_hash for r in rows] == [hash_api_key(key)]
    assert key not in {r.key_hash for r in rows} and rows[0].prefix == key[:10]

    who = await resolve_key(bus, key)
    assert who["known"] and who["actor_id"] == "user:slack-uadmin" and "admin" in who["roles"]
    assert "fdk_" not in str(who)
    # An API-key actor (user:<handle>) is that user for ownership and "me".
    mine = await micro(
        bus,
        "whoami",
        api_envelope("whoami", {}, actor=ADMIN.model_copy(update={"id": who["actor_id"]})),
    )
    assert mine.data["user"] == "slack-uadmin"

    revoked = await micro(
        bus, "api_key_revoke", api_envelope("api_key_revoke", {"key_id": created.data["id"]})
    )
    assert revoked.status == "ok"
    assert (await resolve_key(bus, key))["known"] is False
    listed = await ask(bus, "user_get", {"user": "slack-uadmin"}, ADMIN)
    assert listed.data["api_keys"][0]["revoked"] is True
    denied = await ask(bus, "user_list", {}, USER)
    assert denied.status == "denied"


async def test_admin_identities_from_settings_on_restart(
    bus: Bus, sqlite_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    from tests.services.management.conftest import make_settings

    settings = make_settings(sqlite_url, tmp_path, admin_identities="site:alice, slack:UADMIN")
    for instance in ("a", "b"):  # a second start changes nothing
        runner = signed_runner(service, bus, settings=settings, clock=clock, instance=instance)
        await runner.start()
        await runner.stop(grace=1)
    events = await events_of(bus, "user.roles_changed")
    assert sorted(e.payload["user"] for e in events) == ["site-alice", "slack-uadmin"]
