"""``gather_health``: every service reported, a failing or silent check is not ok."""

from __future__ import annotations

import asyncio
from typing import Any

from bots.web.health import gather_health


async def test_every_check_reported_and_failures_are_not_ok() -> None:
    async def up() -> dict[str, Any]:
        return {"ok": True, "pid": 42}

    async def broken() -> dict[str, Any]:
        raise ConnectionError("refused")

    async def silent() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {"ok": True}

    states = await gather_health(
        {"management": up, "analysis": broken, "generative": silent}, timeout=0.2
    )
    assert list(states) == ["analysis", "generative", "management"]
    assert states["management"] == {"ok": True, "pid": 42}
    assert states["analysis"] == {"ok": False, "error": "ConnectionError: refused"}
    assert states["generative"] == {"ok": False, "error": "no answer in 0.2 s"}
    assert await gather_health({}) == {}
