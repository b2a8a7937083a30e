"""Outbound HTTP to operator-given URLs (webhooks, Slack incoming webhooks) without SSRF.

A destination is checked twice: at registration (`check_destination`) and again at connect
time (`post_json`), which resolves the host once, refuses the request unless every address is
public (or inside the operator's allow-list), and then connects to the checked address itself,
so a DNS answer that changes between check and connect (rebinding) cannot redirect the
request. TLS still verifies the certificate against the host name. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Cloud metadata endpoints are link-local or private already; listed so the refusal names them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)


class DestinationError(ValueError):
    """The URL may not be used as a delivery destination; the message says why."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL: where to connect (`address`) and what to tell the server (`host`)."""

    scheme: str
    host: str
    port: int
    target: str  # path and query
    address: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (both families)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as problem:
        raise DestinationError(f"host {host!r} does not resolve ({problem})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _networks(allowed: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in allowed]


def refusal(address: IPAddress, *, allowed: Sequence[str] = ()) -> str | None:
    """Why the address may not be reached (None when it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _networks(allowed)):
        return None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for label, test in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("an unspecified address", address.is_unspecified),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("not a public address", not address.is_global),
    ):
        if test:
            return label
    return None


def check_destination(
    url: str, *, allowed: Sequence[str] = (), resolver: Resolver = system_resolver
) -> Destination:
    """Parse and resolve the URL; raise DestinationError unless every address is allowed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as problem:
        raise DestinationError(f"not a valid URL: {problem}") from None
    if parts.scheme not in {"http", "https"}:
        raise DestinationError("only http:// and https:// URLs can receive deliveries")
    if not parts.hostname:
        raise DestinationError("the URL has no host")
    if parts.username or parts.password:
        raise DestinationError("credentials in the URL are not supported")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise DestinationError(f"host {host!r} does not resolve")
    for text in addresses:
        why = refusal(ipaddress.ip_address(text.split("%", 1)[0]), allowed=allowed)
        if why is not None:
            raise DestinationError(
                f"{host} resolves to {text}, {why}; webhooks reach only public addresses "
                "unless K8SMON_WEBHOOK_ALLOWED_NETWORKS lists the network"
            )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(
        scheme=parts.scheme, host=host, port=port, target=target, address=addresses[0]
    )


def _host_header(destination: Destination) -> str:
    default = 443 if destination.scheme == "https" else 80
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    return host if destination.port == default else f"{host}:{destination.port}"


def post_json(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    allowed: Sequence[str] = (),
    timeout_s: float = 10.0,
    resolver: Resolver = system_resolver,
) -> Answer:
    """POST the body to the URL's checked address; never follows redirects.

    Raises DestinationError when the destination is refused and OSError-derived
    urllib3 errors (as DestinationError too) when the connection fails.
    """
    destination = check_destination(url, allowed=allowed, resolver=resolver)
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    pool: urllib3.HTTPConnectionPool
    if destination.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            destination.address,
            destination.port,
            timeout=timeout,
            retries=False,
            server_hostname=destination.host,
            assert_hostname=destination.host,
            cert_reqs=ssl.CERT_REQUIRED,
            ca_certs=certifi.where(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            destination.address, destination.port, timeout=timeout, retries=False
        )
    try:
        response = pool.urlopen(
            "POST",
            destination.target,
            body=body,
            headers={**headers, "Host": _host_header(destination)},
            redirect=False,
            retries=False,
            preload_content=True,
        )
    except urllib3.exceptions.HTTPError as problem:
        raise DestinationError(f"{type(problem).__name__}: {problem}") from problem
    finally:
        pool.close()
    return Answer(status=response.status, body=response.data[:2000])
