"""The shared service runtime: declare typed handlers once, serve them on three doors.

- the service's intent consumer on ``FD_INTENTS`` (answer: a ``reply`` on ``FD_EVENTS``),
- a NATS micro request/reply endpoint (``$SRV.PING/INFO/STATS`` discovery works),
- an HTTP route (FastAPI, OpenAPI docs), served by the gateway and forwarded as a request.

Every door verifies the caller's signed claim (``events.claims``) before a handler runs.
"""

from backend_services.runtime.context import HandlerContext, ServiceContext, utc_now
from backend_services.runtime.errors import Denied, HandlerError
from backend_services.runtime.http import (
    ActorResolver,
    DoorCaller,
    RemoteCall,
    create_http_app,
    http_router,
    reply_response,
)
from backend_services.runtime.runner import ServiceRunner, envelope_from_request, reply_id
from backend_services.runtime.service import HandlerSpec, Service

__all__ = [
    "ActorResolver",
    "Denied",
    "DoorCaller",
    "HandlerContext",
    "HandlerError",
    "HandlerSpec",
    "RemoteCall",
    "Service",
    "ServiceContext",
    "ServiceRunner",
    "create_http_app",
    "envelope_from_request",
    "http_router",
    "reply_id",
    "reply_response",
    "utc_now",
]
