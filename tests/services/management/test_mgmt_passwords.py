"""Workspace passwords: set by an admin on the request door only, stored as Argon2id hashes,
checked by the internal ``check_password`` (system claims only)."""

from __future__ import annotations

from sqlalchemy import select

from backend_services.management.core import STATE_KEY
from backend_services.management.passwords import check_password, hash_password
from backend_services.management.tables import User
from backend_services.runtime import ServiceRunner
from events.bus import Bus
from events.claims import system_actor
from events.envelope import Actor
from events.micro import ServiceClient
from events.payloads import Reply
from tests.claims import TEST_ISSUER
from tests.services.management.conftest import ADMIN, AGENT, ask
from tests.services.management.test_mgmt_tickets import make_agent

GATEWAY = system_actor("gateway")


async def call(bus: Bus, action: str, payload: dict, actor: Actor) -> Reply:
    return await ServiceClient(bus, TEST_ISSUER).call("management", action, payload, actor)


def test_hashes_are_argon2id_and_salted() -> None:
    one, two = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert one.startswith("$argon2id$") and one != two
    assert check_password(one, "correct horse battery")
    assert not check_password(one, "wrong horse battery")
    assert not check_password(None, "anything at all")


async def test_set_and_check_password(bus: Bus, sqlite_runner: ServiceRunner) -> None:
    await make_agent(bus)
    # Only admins set passwords, and never through an intent (kept on the bus).
    by_intent = await ask(
        bus, "user_set_password", {"user": "andy", "password": "s3cret-enough"}, ADMIN
    )
    assert by_intent.status == "denied"
    not_admin = await call(
        bus, "user_set_password", {"user": "andy", "password": "s3cret-enough"}, AGENT
    )
    assert not_admin.status == "denied"
    short = await call(bus, "user_set_password", {"user": "andy", "password": "short"}, ADMIN)
    assert short.status == "invalid"
    done = await call(
        bus, "user_set_password", {"user": "andy", "password": "s3cret-enough"}, ADMIN
    )
    assert done.status == "ok" and "s3cret" not in done.text
    state = sqlite_runner.context.state[STATE_KEY]
    async with state.db.session() as s:
        stored = await s.scalar(select(User.password_hash).where(User.handle == "andy"))
    assert stored is not None and stored.startswith("$argon2id$")

    good = await call(bus, "check_password", {"user": "andy", "password": "s3cret-enough"}, GATEWAY)
    assert good.status == "ok" and good.data is not None
    assert good.data["known"] and good.data["actor_id"] == "user:andy"
    assert good.data["roles"] == ["agent", "user"]
    by_email = await call(
        bus, "check_password", {"user": "andy@example.com", "password": "s3cret-enough"}, GATEWAY
    )
    assert by_email.data is not None and by_email.data["known"]
    for user, password in [("andy", "s3cret-enougH"), ("nobody", "s3cret-enough")]:
        bad = await call(bus, "check_password", {"user": user, "password": password}, GATEWAY)
        assert bad.status == "ok" and bad.data is not None and not bad.data["known"]
    # Internal: a person's claim is refused, and there is no intent door.
    refused = await call(
        bus, "check_password", {"user": "andy", "password": "s3cret-enough"}, ADMIN
    )
    assert refused.status == "denied"
