"""The caller's address: the socket peer, or — only when that peer is a trusted proxy
(`OPENGATE_TRUSTED_PROXIES`) — the right-most untrusted address of `X-Forwarded-For`.
A client cannot choose its own address by sending the header."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`"10.0.0.0/8, 127.0.0.1"` → networks; raises ValueError naming a bad entry."""
    networks = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"OPENGATE_TRUSTED_PROXIES: {item!r} is not an address or network"
            ) from None
    return tuple(networks)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class ClientAddress:
    def __init__(self, trusted_proxies: str = "") -> None:
        self.networks = parse_networks(trusted_proxies)

    def __call__(self, scope: Scope) -> str:
        peer = (scope.get("client") or ("unknown", 0))[0]
        if not self.networks or not _trusted(peer, self.networks):
            return peer
        forwarded = [
            value.decode("latin-1")
            for name, value in scope["headers"]
            if name == b"x-forwarded-for"
        ]
        hops = [h.strip() for v in forwarded for h in v.split(",") if h.strip()]
        # Walk from the nearest hop back; the first address not ours is the client.
        for hop in reversed(hops):
            if not _trusted(hop, self.networks):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return peer  # garbage in the header: believe the socket
        return hops[0] if hops else peer
