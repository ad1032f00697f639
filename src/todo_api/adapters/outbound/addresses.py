"""The SSRF guard: which addresses a webhook may reach, checked when it is created and again on
every connection (DNS can change between the two, or between a check and a connect).

At delivery the guard is the transport's network layer: it resolves the host itself, refuses the
connection if any address is unsafe, and connects to the address it checked. TLS still verifies
the certificate against the URL's host name (SNI) and the Host header is the URL's: the request
is what it would be, only the resolution is ours.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

import httpcore

from todo_api.domain.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_METADATA: Final = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23")
)


def refusal(address: IPAddress) -> str | None:
    """Why a webhook may not reach `address`, or None when it may (a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            return refusal(embedded)
    checks = (
        (address in _METADATA, "a cloud metadata address"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "shared (CGNAT)"),
        (isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"), "unique-local"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not public"),
    )
    return next((why for refused, why in checks if refused), None)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def first_refusal(addresses: Iterable[IPAddress]) -> str | None:
    for address in addresses:
        if (why := refusal(address)) is not None:
            return f"{address} is {why}"
    return None


class AddressGuard:
    """The `TargetGuard` port: at creation, the URL's host must resolve to public addresses only."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

    async def check(self, url: str) -> None:
        if self._allow_private:
            return
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await resolve(host, port)
        except OSError:
            raise InvalidInput(f"The host {host} does not resolve.", code="invalid_webhook_url", field="url") from None
        if (why := first_refusal(addresses)) is not None:
            raise InvalidInput(
                f"Webhooks may not target private, loopback, link-local or metadata addresses ({why}).",
                code="unsafe_webhook_url",
                field="url",
            )


class GuardedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the guard in it: resolve, check every address, connect to a
    checked one. A refused host fails like an unreachable one (a ConnectError)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"{host} does not resolve: {error}") from error
        if not self._allow_private and (why := first_refusal(addresses)) is not None:
            raise httpcore.ConnectError(f"unsafe target refused: {host} resolves to {why}")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as error:
                last = error
        raise last or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
