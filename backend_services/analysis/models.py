"""Input and output models of the analysis service's actions."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend_services.analysis.metrics import Metric, MetricAnswer
from backend_services.analysis.periods import Period


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricsQuery(_In):
    """``metrics_query``: one or more metrics for a period, optionally with a chart."""

    metric: Metric | None = Field(default=None, description="One metric")
    metrics: list[Metric] = Field(default_factory=list, max_length=11, description="Or several")
    period: Period = "this_week"
    top: int = Field(default=5, ge=1, le=20, description="How many intents top_intents lists")
    chart: bool = Field(default=False, description="Also render a chart of the first metric")

    @model_validator(mode="after")
    def _some_metric(self) -> MetricsQuery:
        if self.metric is None and not self.metrics:
            raise ValueError("say which metric: give 'metric' (e.g. tickets_opened) or 'metrics'")
        return self

    def wanted(self) -> list[str]:
        """The metrics asked for, in order, without repeats."""
        names = ([self.metric] if self.metric else []) + list(self.metrics)
        return list(dict.fromkeys(names))


class DashboardQuery(_In):
    """``metrics_dashboard``: every headline metric for a period."""

    period: Period = "this_week"


class ChartQuery(_In):
    """``metrics_chart``: a PNG chart of one metric for a period."""

    metric: Metric
    period: Period = "this_week"


class NoInput(_In):
    """An action without parameters."""


class MetricsAnswer(BaseModel):
    """The answers to a metrics question."""

    period: str
    start: datetime
    end: datetime
    answers: list[MetricAnswer]
    image: str | None = Field(default=None, description="URL of a PNG chart")
    chart_id: str | None = None
    stale: bool = Field(default=False, description="The views had not caught up in time")

    def reply_text(self) -> str:
        """The answers' sentences, one per line."""
        lines = [a.text for a in self.answers]
        if self.stale:
            lines.append("(These numbers may miss the very latest events.)")
        return "\n".join(lines)


class ChartOut(BaseModel):
    """A rendered chart."""

    metric: str
    period: str
    chart_id: str
    image: str
    text: str

    def reply_text(self) -> str:
        """The metric's sentence and where the chart is."""
        return f"{self.text}\nChart: {self.image}"


class ViewsStatus(BaseModel):
    """Where the views stand on the bus."""

    last_seq: int
    events: int
    bus_last_seq: int
    conversations: int
    tickets: int
    rebuilt: bool = False

    def reply_text(self) -> str:
        """A status line."""
        verb = "Rebuilt the views" if self.rebuilt else "The views are"
        return (
            f"{verb} at event {self.last_seq} of {self.bus_last_seq} ({self.events} events read, "
            f"{self.conversations} conversations, {self.tickets} tickets)."
        )
