"""Every deployable service: name -> import path of its ``Service`` object (``module:attr``).

``frontdoor up`` starts all of them, ``frontdoor serve <name>`` one of them, ``frontdoor doctor``
checks they answer, and the deploy files (compose, Kubernetes) have one component each (a test
checks that). Adding a service: one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend_services.runtime import Service

SERVICES: dict[str, str] = {
    "management": "backend_services.management.service:service",
    "marketing": "backend_services.marketing.service:service",
    "analysis": "backend_services.analysis.service:service",
    "generative": "backend_services.generative.service:service",
}


def service_names() -> list[str]:
    """The registered service names, sorted."""
    return sorted(SERVICES)


def load_service(name: str) -> Service:
    """Import and return the ``Service`` registered as ``name`` (KeyError when unknown)."""
    from backend_services.runtime import Service

    if name not in SERVICES:
        raise KeyError(f"unknown service {name!r}; registered: {', '.join(service_names())}")
    module_name, _, attr = SERVICES[name].partition(":")
    service = getattr(importlib.import_module(module_name), attr)
    if not isinstance(service, Service):
        raise TypeError(f"{SERVICES[name]} is not a backend_services.runtime.Service")
    if service.name != name:
        raise ValueError(f"{SERVICES[name]} is named {service.name!r}, registered as {name!r}")
    return service


def service_actions() -> dict[str, set[str]]:
    """Every registered service's public action names (imports the services, starts nothing);
    internal actions such as ``management.resolve_actor`` are left out."""
    return {name: set(load_service(name).public_handlers()) for name in service_names()}
