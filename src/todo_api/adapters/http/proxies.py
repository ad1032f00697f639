"""The client's address behind reverse proxies we trust, and only those.

`X-Forwarded-For` is a list any client can start: each proxy appends the address it received the
request from. Walking it from the right, past the proxies we trust, the first address that is not
one of them is the last one a trusted proxy vouched for: the real client. Anything further left
was written by that client and proves nothing. A request that did not come from a trusted proxy
keeps the peer address, whatever headers it carries, so throttles and logs cannot be spoofed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Network = IPv4Network | IPv6Network
_SCHEMES = frozenset({"http", "https"})


class TrustedProxies:
    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        parsed = _address(address)
        return parsed is not None and any(parsed in network for network in self._networks)

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client behind `peer`, given the `X-Forwarded-For` field lines in the order received."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        client = peer
        for hop in reversed([hop.strip() for line in forwarded_for for hop in line.split(",")]):
            parsed = _address(hop)
            if parsed is None:
                break  # not an address a proxy writes: the client wrote it; the last proxy is all we know
            client = str(parsed)
            if not any(parsed in network for network in self._networks):
                break
        return client

    def scheme(self, peer: str, forwarded_proto: Sequence[str], default: str) -> str:
        """`X-Forwarded-Proto` from a trusted proxy (the one nearest us, if several wrote it)."""
        if not forwarded_proto or not self.trusts(peer):
            return default
        proto = forwarded_proto[-1].rsplit(",", 1)[-1].strip().lower()
        return proto if proto in _SCHEMES else default


def _address(text: str) -> IPv4Address | IPv6Address | None:
    """An IP address, also as `[v6]`; an IPv4-mapped IPv6 address counts as its IPv4 one."""
    try:
        parsed = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(parsed, IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed
