"""The shared service runtime: declare typed handlers once, serve them on three doors.

- the service's intent consumer on ``FD_INTENTS`` (answer: a ``reply`` on ``FD_EVENTS``),
- a NATS micro request/reply endpoint (``$SRV.PING/INFO/STATS`` discovery works),
- an HTTP route (FastAPI, OpenAPI docs).
"""

from backend_services.runtime.context import HandlerContext, ServiceContext, utc_now
from backend_services.runtime.errors import Denied, HandlerError
from backend_services.runtime.http import ActorResolver, create_http_app, http_router
from backend_services.runtime.runner import ServiceRunner, envelope_from_request, reply_id
from backend_services.runtime.service import HandlerSpec, Service

__all__ = [
    "ActorResolver",
    "Denied",
    "HandlerContext",
    "HandlerError",
    "HandlerSpec",
    "Service",
    "ServiceContext",
    "ServiceRunner",
    "create_http_app",
    "envelope_from_request",
    "http_router",
    "reply_id",
    "utc_now",
]
