"""Who is on the other end: the client's address and whether it came over HTTPS, believing
`X-Forwarded-For` and `X-Forwarded-Proto` only from a trusted reverse proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientView:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies
        )

    def _is_trusted(self, address: str | None) -> bool:
        if address is None or not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    @staticmethod
    def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
        for key, value in scope.get("headers", ()):
            if key.lower() == name:
                return bytes(value).decode("latin-1")
        return None

    def address(self, scope: Mapping[str, Any]) -> str | None:
        """The socket's peer, or behind trusted proxies the nearest untrusted hop of
        `X-Forwarded-For` (read from the right: only the proxies' own entries are sure)."""
        peer = (scope.get("client") or (None,))[0]
        if not self._is_trusted(peer):
            return peer
        forwarded = self._header(scope, b"x-forwarded-for")
        if not forwarded:
            return peer
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def is_https(self, scope: Mapping[str, Any]) -> bool:
        if scope.get("scheme") in ("https", "wss"):
            return True
        peer = (scope.get("client") or (None,))[0]
        if not self._is_trusted(peer):
            return False
        proto = self._header(scope, b"x-forwarded-proto") or ""
        return proto.split(",")[0].strip().lower() == "https"
