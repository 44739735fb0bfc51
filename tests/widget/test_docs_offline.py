"""``/docs`` renders in a real browser with nothing from another origin and nothing the page's
CSP refuses; ``/docs`` can be closed and ``/metrics`` protected."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bots.web.limits import csp
from events.bus import Bus
from tests.bots.conftest import ScriptedDialogue, start_gateway

pytestmark = [pytest.mark.timeout(120)]


@pytest.mark.browser
async def test_docs_render_offline_under_the_csp(bus: Bus, browser: Any) -> None:
    live = await start_gateway(bus, ScriptedDialogue())
    try:
        page = await browser.new_page()
        outside: list[str] = []
        problems: list[str] = []

        async def only_local(route: Any) -> None:
            url = route.request.url
            if url.startswith(live.url):
                await route.continue_()
            else:
                outside.append(url)
                await route.abort()

        await page.route("**/*", only_local)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        response = await page.goto(f"{live.url}/docs")
        assert response is not None and response.status == 200
        assert response.headers["content-security-policy"] == csp("'self'")
        await page.wait_for_selector(".opblock", timeout=30_000)
        paths = await page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/webhooks/rest/webhook" in p for p in paths), paths
        assert any("/api/session" in p for p in paths), paths
        # one operation opens and shows its answers
        await page.locator(".opblock-summary").first.click()
        await page.wait_for_selector(".responses-table", timeout=10_000)
        assert outside == []
        assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], (
            problems
        )
        await page.close()
    finally:
        await live.stop()


async def test_docs_can_be_closed(bus: Bus) -> None:
    live = await start_gateway(bus, ScriptedDialogue(), docs=False)
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            for path in ("/docs", "/openapi.json", "/docs/init.js", "/docs/assets/swagger-ui.css"):
                assert (await client.get(path)).status_code == 404, path
    finally:
        await live.stop()
    live = await start_gateway(bus, ScriptedDialogue())
    try:
        async with httpx.AsyncClient(base_url=live.url) as client:
            for path in ("/docs", "/openapi.json", "/docs/init.js", "/docs/assets/swagger-ui.css"):
                assert (await client.get(path)).status_code == 200, path
            page = (await client.get("/docs")).text
            assert "<script>" not in page and "cdn" not in page.lower()
    finally:
        await live.stop()


async def test_metrics_need_the_token_when_one_is_set(bus: Bus) -> None:
    from frontdoor.wiring import Stack, add_operational_routes
    from tests.bots.conftest import LiveServer

    def app_with(token: str | None) -> FastAPI:
        app = FastAPI()
        add_operational_routes(app, Stack(bus=bus), metrics_token=token)
        return app

    for token in (None, "metrics-token-0123456789"):
        live = LiveServer(app_with(token))
        await live.start()
        try:
            async with httpx.AsyncClient(base_url=live.url) as client:
                open_ = await client.get("/metrics/")
                if token is None:
                    assert open_.status_code == 200
                    continue
                assert open_.status_code == 401 and open_.headers["www-authenticate"] == "Bearer"
                wrong = await client.get("/metrics/", headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 401
                right = await client.get("/metrics/", headers={"Authorization": f"Bearer {token}"})
                assert right.status_code == 200 and "python_info" in right.text
        finally:
            await live.stop()
