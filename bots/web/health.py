"""The services' health as the gateway's ``/healthz`` shows it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

#: A service's health: ``{"ok": bool, ...details}``.
HealthCheck = Callable[[], Awaitable[dict[str, Any]]]
#: How long ``/healthz`` waits for one service's health.
HEALTH_CHECK_TIMEOUT = 1.0


async def gather_health(
    checks: dict[str, HealthCheck], timeout: float = HEALTH_CHECK_TIMEOUT
) -> dict[str, dict[str, Any]]:
    """Every check's answer by name, asked concurrently; one that fails or does not answer
    within ``timeout`` seconds is reported not ok, with the reason."""

    async def one(check: HealthCheck) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                return await check()
        except TimeoutError:
            return {"ok": False, "error": f"no answer in {timeout:g} s"}
        except Exception as exc:  # a health check must report, not fail /healthz
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    names = sorted(checks)
    states = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, states, strict=True))
