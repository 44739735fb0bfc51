"""The client address of a request: the peer, or what trusted proxies say it is.

``X-Forwarded-For`` is believed only when the peer is a trusted proxy
(``FRONTDOOR_TRUSTED_PROXIES``, a list of CIDRs; none by default). The header is read right
to left, skipping only hops that are themselves trusted proxies: the first untrusted hop is the
client (entries further left were written by the client and prove nothing).

As a rate-limit key, an IPv6 address counts as its /64 (one customer line routinely holds a
whole /64, so single addresses are free for the asking); an IPv4-mapped IPv6 address is IPv4.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import Scope

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) as networks; ``ValueError`` names a bad entry."""
    networks: list[IPNetwork] = []
    for raw in cidrs:
        text = raw.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR: {text!r}") from None
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[v6]:port"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_ip(scope: Scope, trusted: Sequence[IPNetwork]) -> IPAddress | None:
    """The client's IP address of an HTTP or WebSocket ``scope`` (``None`` if unknown)."""
    client = scope.get("client")
    peer = _address(str(client[0])) if client else None
    if peer is None or not trusted or not _trusted(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return peer  # a hop we cannot read: the last proxy we trust is what we know
        if not _trusted(address, trusted):
            return address
        peer = address
    return peer


def address_key(address: IPAddress | None) -> str:
    """The rate-limit key of a client address (IPv6: its /64)."""
    if address is None:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_key(scope: Scope, trusted: Sequence[IPNetwork]) -> str:
    """The rate-limit key of the client of ``scope``."""
    return address_key(client_ip(scope, trusted))
