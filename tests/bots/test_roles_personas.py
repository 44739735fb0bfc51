"""Actor roles from the real management service; the bot registry from an experts file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend_services import registry
from bots.personas import BotConfigError, UnknownBot, load_bots
from bots.roles import RoleResolver
from events.bus import Bus
from events.envelope import Actor, Conversation, Envelope
from events.micro import ServiceClient
from tests.claims import TEST_ISSUER, signed_runner


async def test_roles_come_from_management_and_are_invalidated(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTDOOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FRONTDOOR_ADMIN_IDENTITIES", "site:boss")
    runner = signed_runner(registry.load_service("management"), bus)
    await runner.start()
    resolver = RoleResolver(bus, ServiceClient(bus, TEST_ISSUER), timeout=5.0)
    await resolver.start()
    try:
        boss = await resolver.resolve("site:boss", "The Boss")
        assert "admin" in boss.roles and boss.id == "site:boss" and boss.name == "The Boss"
        nobody = await resolver.resolve("site:someone-else")
        assert nobody.roles == ("user",)
        # A guest is a guest, whatever its id looks like: never looked up, never elevated.
        guest = await resolver.resolve("guest:boss")
        assert guest.roles == ("guest",) and "guest:boss" not in resolver._cache
        assert "site:boss" in resolver._cache
        await bus.publish(
            Envelope.new(
                "user.roles_changed",
                {"user": "boss", "user_id": 1, "old_roles": ["admin"], "new_roles": ["user"]},
                conversation=Conversation(channel="api", id="admin"),
                actor=Actor(id="admin"),
            )
        )
        async with asyncio.timeout(10):
            while "site:boss" in resolver._cache:
                await asyncio.sleep(0.05)
    finally:
        await resolver.stop()
        await runner.stop(grace=1.0)


async def test_without_management_the_default_role_is_user(bus: Bus) -> None:
    resolver = RoleResolver(bus, ServiceClient(bus, TEST_ISSUER), timeout=0.2)
    actor = await resolver.resolve("slack:U1")
    assert actor.roles == ("user",)
    assert (await resolver.resolve("guest:w-1")).roles == ("guest",)


def test_experts_file(tmp_path: Path) -> None:
    (tmp_path / "experts.yml").write_text(
        "experts:\n"
        "  - name: netops\n    description: Network expert\n    knowledge: kb/net\n"
        "    persona: Terse.\n"
        "  - name: dba\n"
    )
    bots = load_bots(tmp_path / "experts.yml")
    assert bots.names() == ["chatbot", "support", "netops", "dba"]
    assert bots.get("netops").knowledge == tmp_path / "kb/net"
    assert bots.get(None).name == "chatbot"
    with pytest.raises(UnknownBot, match="choose one of: chatbot, support, netops, dba"):
        bots.get("ops")
    assert [b.name for b in load_bots().experts()] == ["ops"]


def test_bad_experts_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("experts:\n  - name: Bad Name\n")
    with pytest.raises(BotConfigError, match="Bad Name"):
        load_bots(bad)
    bad.write_text("experts:\n  - name: chatbot\n")
    with pytest.raises(BotConfigError, match="configured twice"):
        load_bots(bad)
    with pytest.raises(BotConfigError, match="cannot read"):
        load_bots(tmp_path / "missing.yml")
