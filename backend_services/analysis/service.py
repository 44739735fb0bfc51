"""The analysis service: answers metrics questions from views built from the event stream.

At start it replays ``FD_EVENTS`` from sequence 1 into fresh views and keeps following the bus,
so the views can be thrown away and rebuilt at any time (``views_rebuild``). A query first
waits (bounded) until the views include every event published before it.

Roles: metrics (aggregates only, no personal data) are open to ``user``, ``agent``, ``admin``;
``views_status`` needs ``agent``/``admin``; ``views_rebuild`` needs ``admin``.
The chart PNGs are served by ``GET <prefix>/analysis/charts/{id}.png`` (``charts_router``).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from backend_services.analysis.charts import ChartStore, render_png
from backend_services.analysis.follower import ViewFollower
from backend_services.analysis.metrics import MetricAnswer, compute
from backend_services.analysis.models import (
    ChartOut,
    ChartQuery,
    DashboardQuery,
    MetricsAnswer,
    MetricsQuery,
    NoInput,
    ViewsStatus,
)
from backend_services.analysis.periods import Window, window
from backend_services.analysis.settings import AnalysisSettings
from backend_services.analysis.views import AnalysisViews
from backend_services.runtime import HandlerContext, Service, ServiceContext

service = Service(
    "analysis", version="0.1.0", description="Metrics and charts from the ordered event bus"
)

#: Guests (widget and REST visitors nobody identified) included.
ANYONE = {"guest", "user", "agent", "admin"}
STAFF = {"agent", "admin"}
DASHBOARD = (
    "conversations",
    "containment",
    "fallback_rate",
    "top_intents",
    "reply_latency",
    "tickets_opened",
    "open_tickets",
    "first_response",
    "resolution_time",
    "sla_breaches",
    "csat",
)


def _settings(ctx: ServiceContext) -> AnalysisSettings:
    return ctx.state["settings"]  # type: ignore[no-any-return]


def _follower(ctx: HandlerContext) -> ViewFollower:
    return ctx.state["follower"]  # type: ignore[no-any-return]


@service.on_startup
async def start_views(ctx: ServiceContext) -> None:
    """Replay the bus into fresh views and follow it; wait (bounded) for the first catch-up."""
    settings = ctx.settings if isinstance(ctx.settings, AnalysisSettings) else AnalysisSettings()
    ctx.state["settings"] = settings
    ctx.state["charts"] = ChartStore(ctx.bus)
    follower = ViewFollower(ctx.bus)
    follower.start()
    ctx.state["follower"] = follower
    await follower.catch_up(settings.catchup_timeout_seconds)


@service.on_shutdown
async def stop_views(ctx: ServiceContext) -> None:
    """Stop following the bus."""
    follower = ctx.state.pop("follower", None)
    if follower is not None:
        await follower.stop()


def chart_url(settings: AnalysisSettings, chart_id: str) -> str:
    """Where the chart ``chart_id`` can be fetched."""
    base = settings.public_url.rstrip("/")
    return f"{base}{settings.http_prefix.rstrip('/')}/analysis/charts/{chart_id}.png"


async def _fresh_views(ctx: HandlerContext) -> tuple[AnalysisViews, bool]:
    follower = _follower(ctx)
    caught = await follower.catch_up(_settings(ctx.service).catchup_timeout_seconds)
    return follower.views, not caught


async def _answer(metric: str, views: AnalysisViews, win: Window, top: int) -> MetricAnswer:
    return compute(metric, views, win, top)


async def _chart(ctx: HandlerContext, answer: MetricAnswer) -> tuple[str, str]:
    png = await asyncio.to_thread(render_png, answer)
    chart_id = await ctx.state["charts"].put(png)
    return chart_id, chart_url(_settings(ctx.service), chart_id)


async def _query(
    ctx: HandlerContext, metrics: list[str], period: str, top: int, chart: bool
) -> MetricsAnswer:
    views, stale = await _fresh_views(ctx)
    win = window(period, ctx.now())  # type: ignore[arg-type]
    answers = list(await asyncio.gather(*(_answer(m, views, win, top) for m in metrics)))
    out = MetricsAnswer(period=period, start=win.start, end=win.end, answers=answers, stale=stale)
    if chart and answers:
        out.chart_id, out.image = await _chart(ctx, answers[0])
    return out


@service.handler("metrics_query", roles=ANYONE, summary="Answer a metrics question")
async def metrics_query(payload: MetricsQuery, ctx: HandlerContext) -> MetricsAnswer:
    """One or several metrics for a period, computed concurrently; a chart on request."""
    return await _query(ctx, payload.wanted(), payload.period, payload.top, payload.chart)


@service.handler("metrics_dashboard", roles=ANYONE, summary="Every headline metric")
async def metrics_dashboard(payload: DashboardQuery, ctx: HandlerContext) -> MetricsAnswer:
    """Conversations, containment, fallbacks, intents, latency and ticket KPIs at once."""
    return await _query(ctx, list(DASHBOARD), payload.period, 5, chart=False)


@service.handler("metrics_chart", roles=ANYONE, summary="A PNG chart of a metric")
async def metrics_chart(payload: ChartQuery, ctx: HandlerContext) -> ChartOut:
    """Render the metric's series as a PNG and give its URL (also in the reply's image)."""
    answer = await _query(ctx, [payload.metric], payload.period, 10, chart=True)
    assert answer.chart_id is not None and answer.image is not None
    return ChartOut(
        metric=payload.metric,
        period=payload.period,
        chart_id=answer.chart_id,
        image=answer.image,
        text=answer.answers[0].text,
    )


async def _status(ctx: HandlerContext, rebuilt: bool) -> ViewsStatus:
    views = _follower(ctx).views
    return ViewsStatus(
        last_seq=views.last_seq,
        events=views.events,
        bus_last_seq=await ctx.bus.last_sequence(),
        conversations=len(views.conversation_start),
        tickets=len(views.tickets),
        rebuilt=rebuilt,
    )


@service.handler("views_status", roles=STAFF, summary="How far the views have read the bus")
async def views_status(payload: NoInput, ctx: HandlerContext) -> ViewsStatus:
    """The views' position on the bus."""
    return await _status(ctx, rebuilt=False)


@service.handler("views_rebuild", roles={"admin"}, summary="Throw the views away and replay")
async def views_rebuild(payload: NoInput, ctx: HandlerContext) -> ViewsStatus:
    """Replay the bus from sequence 1 into fresh views (the old ones answer until then)."""
    old = _follower(ctx)
    fresh = ViewFollower(ctx.bus)
    fresh.start()
    await fresh.catch_up(max(_settings(ctx.service).catchup_timeout_seconds, 60.0))
    ctx.state["follower"] = fresh
    await old.stop()
    return await _status(ctx, rebuilt=True)


def charts_router(charts: ChartStore) -> APIRouter:
    """``GET /analysis/charts/{id}.png`` from the charts object store (whichever analysis
    instance rendered it). The gateway serves it, in every shape of the deployment."""
    router = APIRouter(prefix="/analysis", tags=["analysis"])

    @router.get(
        "/charts/{chart_id}.png",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {"description": "No such chart"}},
        summary="A chart PNG",
    )
    async def get_chart(chart_id: str) -> Response:
        png = await charts.get(chart_id)
        if png is None:
            raise HTTPException(404, detail=f"There is no chart '{chart_id}'.")
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    return router
