"""Charts as PNG (matplotlib, Agg backend), kept in a NATS object store so any instance serves them.

Rendering uses ``matplotlib.figure.Figure`` with the Agg canvas directly (no pyplot global state),
so it is safe in a worker thread.
"""

from __future__ import annotations

import io
import re
import uuid

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from backend_services.analysis.metrics import MetricAnswer
from events.bus import Bus
from events.subjects import CHARTS_BUCKET

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHART_ID = re.compile(r"^[0-9a-f]{32}$")


def render_png(answer: MetricAnswer) -> bytes:
    """A bar chart of ``answer.series`` (a note when there is nothing to draw)."""
    fig = Figure(figsize=(7.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [label for label, _ in answer.series]
    values = [value for _, value in answer.series]
    title = answer.series_title or answer.metric.replace("_", " ")
    ax.set_title(f"{title} ({answer.period.replace('_', ' ')})", fontsize=11)
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    elif len(values) > 12 and all(len(label) == 10 for label in labels):  # a per-day series
        ax.plot(range(len(values)), values, marker="o", linewidth=1.5, markersize=3)
        step = max(len(labels) // 8, 1)
        ax.set_xticks(range(0, len(labels), step))
        ax.set_xticklabels(labels[::step], rotation=30, ha="right", fontsize=8)
        ax.grid(alpha=0.3)
    else:
        ax.bar(range(len(values)), values, color="#3b7dd8")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, rotation=30 if len(labels) > 4 else 0, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class ChartStore:
    """PNG charts by id in the ``CHARTS_BUCKET`` object store."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def put(self, png: bytes) -> str:
        """Store a PNG; return its id."""
        chart_id = uuid.uuid4().hex
        store = await self._bus.object_store(CHARTS_BUCKET)
        await store.put(f"{chart_id}.png", png)
        return chart_id

    async def get(self, chart_id: str) -> bytes | None:
        """The PNG of ``chart_id`` (``None`` when unknown or not an id)."""
        if not CHART_ID.match(chart_id):
            return None
        store = await self._bus.object_store(CHARTS_BUCKET)
        try:
            result = await store.get(f"{chart_id}.png")
        except Exception:  # nats.js.errors.ObjectNotFoundError and friends
            return None
        return bytes(result.data or b"")
