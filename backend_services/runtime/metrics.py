"""Prometheus metrics of the service runtime (served at ``/metrics`` by whoever hosts HTTP)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HANDLED = Counter(
    "frontdoor_service_calls_total",
    "Handler calls by service, action and reply status (ok, invalid, denied, error, exception)",
    ["service", "action", "status"],
)
DURATION = Histogram(
    "frontdoor_service_call_seconds",
    "Handler call duration (roles, validation, handler) by service and action",
    ["service", "action"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
