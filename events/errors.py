"""The one root exception of Frontdoor and the bus's own errors."""

from __future__ import annotations


class FrontdoorError(Exception):
    """Root of every error Frontdoor raises on purpose."""


class BusError(FrontdoorError):
    """Something went wrong talking to NATS."""


class BusUnavailable(BusError):
    """NATS (or JetStream) could not be reached within the allowed time."""


class StreamConfigConflict(BusError):
    """A stream or consumer exists with a configuration that differs from ours.

    We never overwrite it silently: an operator must decide (``frontdoor doctor`` shows the diff).
    """

    def __init__(self, name: str, differences: dict[str, tuple[object, object]]) -> None:
        self.name = name
        self.differences = differences
        detail = "; ".join(
            f"{key}: existing={have!r}, wanted={want!r}"
            for key, (have, want) in differences.items()
        )
        super().__init__(f"{name} exists with a different configuration ({detail})")


class StreamsMissing(BusError):
    """The JetStream streams do not exist, and this component may not create them."""

    def __init__(self, streams: list[str]) -> None:
        self.streams = streams
        super().__init__(
            f"the JetStream stream(s) {', '.join(streams)} do not exist. Services never create "
            "them: the gateway does when it starts (`frontdoor serve gateway`, or `frontdoor "
            "up`). Start the gateway first, or check that this NATS is the gateway's."
        )


class EmbeddedServerError(BusError):
    """The embedded nats-server could not be started."""


class PublishTimeout(BusError):
    """A publish was not acknowledged by JetStream within the allowed time."""


class StoreTooSmall(BusError):
    """JetStream cannot reserve the bytes a stream, bucket or object store is configured for."""


class StartupRefused(FrontdoorError):
    """A component cannot start with this configuration (the message says what to change)."""
