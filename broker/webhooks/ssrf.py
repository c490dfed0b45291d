"""SSRF guard for webhook targets: http(s) only, public addresses only, and the request goes to the address checked.

The host of a URL is resolved once and every address it resolves to must be public (not private, loopback,
link-local, multicast, reserved, unspecified, shared CGNAT space, IPv6 ULA/site-local, nor an IPv4 address of
those kinds embedded in IPv6), unless the operator allow-lists the host name, the address or its network in
``Settings.webhook_allow_hosts``. The request is then sent to that very address, with the original ``Host``
header and TLS server name, so a DNS answer that changes between check and connect (rebinding) cannot redirect it.
"""

import asyncio
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpx

from broker.errors import BrokerError, InvalidRequest

IPAddress = IPv4Address | IPv6Address
ALLOWED_SCHEMES = ("http", "https")  #: no file:, ftp:, gopher: or other schemes a fetcher might know
MAX_URL_LENGTH = 2_048  #: longer webhook URLs are refused outright
CGNAT = ip_network("100.64.0.0/10")  #: shared address space (RFC 6598): inside a carrier's network, not public
NAT64 = ip_network("64:ff9b::/96")  #: well-known NAT64 prefix: the last 32 bits are the IPv4 address reached


class UnsafeTarget(BrokerError):
    """A webhook URL the broker will not call: bad scheme or host, unresolvable, or a non-public address."""


@dataclass(frozen=True)
class AllowList:
    """Operator exceptions to the public-address rule: host names, or addresses and networks."""

    hosts: frozenset[str]
    networks: tuple[IPv4Network | IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "AllowList":
        hosts: set[str] = set()
        networks: list[IPv4Network | IPv6Network] = []
        for entry in entries:
            entry = entry.strip()
            try:
                networks.append(ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if entry:
                    hosts.add(_normal_host(entry))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return _normal_host(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


@dataclass(frozen=True)
class Target:
    """A checked URL: send to ``url`` (its host is the checked address) with ``headers`` and ``extensions``."""

    url: httpx.URL
    host: str  #: the host name of the original URL
    address: IPAddress
    headers: dict[str, str]
    extensions: dict[str, str]


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is one."""
    if isinstance(address, IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = IPv4Address(int(address) & 0xFFFF_FFFF)
        if embedded is not None and (reason := non_public_reason(embedded)) is not None:
            return f"{reason} (embedded in {address})"
    checks = (
        ("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
        ("link-local", address.is_link_local), ("multicast", address.is_multicast),
        ("shared (CGNAT)", address in CGNAT if address.version == 4 else False),
        ("site-local", isinstance(address, IPv6Address) and address.is_site_local),
        ("private", address.is_private), ("reserved", address.is_reserved), ("not global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def parse_url(url: str) -> httpx.URL:
    """The URL if its form is acceptable for a webhook (scheme, host, length); raises UnsafeTarget otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UnsafeTarget(f"invalid URL: {exc}") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeTarget(f"scheme '{parsed.scheme}' is not allowed; use http or https")
    if not parsed.host:
        raise UnsafeTarget("URL has no host")
    return parsed


def choose_address(parsed: httpx.URL, addresses: Sequence[IPAddress], allow: AllowList) -> Target:
    """The target for ``parsed`` given what its host resolved to; every address must be allowed."""
    if not addresses:
        raise UnsafeTarget(f"host '{parsed.host}' did not resolve to any address")
    host_allowed = allow.allows_host(parsed.host)
    for address in addresses:
        reason = non_public_reason(address)
        if reason is not None and not host_allowed and not allow.allows_address(address):
            raise UnsafeTarget(f"host '{parsed.host}' resolves to {address}, a {reason} address")
    address = addresses[0]
    headers = {"Host": parsed.netloc.decode("ascii")}
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return Target(parsed.copy_with(host=str(address)), parsed.host, address, headers, extensions)


def check_url(url: str, allow: AllowList) -> Target:
    """Resolve (blocking) and check ``url``; raises UnsafeTarget when it may not be called."""
    parsed = parse_url(url)
    literal = _literal(parsed.host)
    if literal is not None:
        return choose_address(parsed, [literal], allow)
    try:
        infos = socket.getaddrinfo(parsed.host, _port(parsed), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"host '{parsed.host}' could not be resolved: {exc}") from None
    return choose_address(parsed, _addresses(infos), allow)


async def check_url_async(url: str, allow: AllowList) -> Target:
    """As :func:`check_url`, resolving without blocking the event loop."""
    parsed = parse_url(url)
    literal = _literal(parsed.host)
    if literal is not None:
        return choose_address(parsed, [literal], allow)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parsed.host, _port(parsed), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"host '{parsed.host}' could not be resolved: {exc}") from None
    return choose_address(parsed, _addresses(infos), allow)


def require_safe_url(url: str, allow_hosts: Sequence[str], param: str) -> None:
    """For the API: a 400 naming ``param`` when ``url`` may not be used as a webhook target."""
    try:
        check_url(url, AllowList.parse(allow_hosts))
    except UnsafeTarget as exc:
        hint = " (an operator can allow it with BROKER_WEBHOOK_ALLOW_HOSTS)" if "address" in str(exc) else ""
        raise InvalidRequest(f"Webhook URL refused: {exc}{hint}.", param=param,
                             code="invalid_webhook_url") from None


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def _port(parsed: httpx.URL) -> int:
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def _addresses(infos: Iterable[tuple[object, ...]]) -> list[IPAddress]:
    seen: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        address = ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone index
        if address not in seen:
            seen.append(address)
    return seen
