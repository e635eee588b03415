"""Requests the gateway itself sends to an address a client named (a `jwks_uri`).

Such an address is an SSRF vector, so it is parsed, never prefix-matched as text: it must
equal an allowlist entry `scheme://host[:port][/path-prefix]` by scheme, host and port and
lie under its path, and it may carry no userinfo (`http://allowed@elsewhere/` names
*elsewhere*). The host is resolved when the request is sent and every address it resolves
to is checked: a private, loopback, link-local or otherwise non-global address is refused
unless the entry names exactly that address (`http://127.0.0.1:8081`) or it lies in a network
the operator allows. The request then goes to the checked address (no second lookup, so a
rebinding DNS answer cannot swap it), with connect and read deadlines, one total deadline
over lookup, connect and body, no redirects, no proxy from the environment, and a cap on
the body size.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import anyio
import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(Exception):  # noqa: N818 (a refusal, not a failure of ours)
    """The address may not be fetched, or the fetch failed. `reason` is for the log: it
    names the rule, never the response body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str  # lower-case; an IP literal in its compressed form
    port: int
    path: str  # the path prefix of an allowlist entry; the path (and query) of a target

    @property
    def ip(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def _parse(url: str, *, entry: bool) -> Origin:
    if not url.isascii() or any(ord(c) <= 0x20 or c in "\\\x7f" for c in url):
        raise OutboundRefused("control, space, backslash or non-ASCII character in the URL")
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise OutboundRefused("scheme is not http or https")
    if "@" in parts.netloc:
        raise OutboundRefused("userinfo in the URL")
    if parts.fragment or (entry and parts.query):
        raise OutboundRefused("fragment (or query in an allowlist entry)")
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise OutboundRefused("invalid port") from None
    try:
        host = ipaddress.ip_address(host).compressed
    except ValueError:
        if not HOST_NAME.fullmatch(host):
            raise OutboundRefused("no host, or not a valid host name") from None
    path = parts.path or "/"
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        raise OutboundRefused("dot segment in the path")
    if not entry and parts.query:
        path = f"{path}?{parts.query}"
    return Origin(parts.scheme, host, port, path)


def _under(path: str, prefix: str) -> bool:
    path = path.split("?", 1)[0]
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


class OutboundPolicy:
    """Which URLs may be fetched: the allowlist entries, and the non-global networks a
    host name may resolve into (by default none)."""

    def __init__(self, allowlist: Iterable[str], private_networks: Iterable[str] = ()) -> None:
        self.entries: list[Origin] = []
        for raw in allowlist:
            try:
                self.entries.append(_parse(raw, entry=True))
            except OutboundRefused as exc:
                raise ValueError(f"allowlist entry {raw!r}: {exc.reason}") from None
        self.networks: list[IPNetwork] = [
            ipaddress.ip_network(n, strict=False) for n in private_networks
        ]

    @classmethod
    def lenient(cls, allowlist: Iterable[str]) -> OutboundPolicy:
        """The policy of the entries that parse (an unusable entry matches nothing)."""
        usable = []
        for raw in allowlist:
            try:
                _parse(raw, entry=True)
            except OutboundRefused:
                continue
            usable.append(raw)
        return cls(usable)

    def match(self, url: str) -> tuple[Origin, Origin]:
        """The target and the entry it is allowed by; OutboundRefused if none."""
        target = _parse(url, entry=False)
        for entry in self.entries:
            if (entry.scheme, entry.host, entry.port) == (
                target.scheme,
                target.host,
                target.port,
            ) and _under(target.path, entry.path):
                return target, entry
        raise OutboundRefused("not on the allowlist (scheme, host, port and path)")

    def permits(self, address: IPAddress, entry: Origin) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address == entry.ip or any(address in network for network in self.networks):
            return True  # the operator named this address, or its network
        return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class Limits:
    connect_timeout: float = 2.0
    read_timeout: float = 2.0
    total_timeout: float = 5.0
    max_bytes: int = 64 * 1024


def fetch(url: str, policy: OutboundPolicy, limits: Limits) -> bytes:
    """GET `url` under the policy and limits: the body of a 200 answer. Raises
    OutboundRefused for anything else. Call it from a thread without an event loop (the
    OAuth core runs in a worker thread): it runs one of its own, so the total deadline
    can cancel the request wherever it is (a server dripping its headers included)."""
    target, entry = policy.match(url)
    try:
        return anyio.run(_fetch, target, entry, policy, limits)
    except OutboundRefused:
        raise
    except TimeoutError:
        raise OutboundRefused(f"no complete answer within {limits.total_timeout} s") from None
    except Exception as exc:  # whatever else went wrong out there, it is a refusal here
        raise OutboundRefused(f"fetch failed ({type(exc).__name__})") from None


async def _fetch(target: Origin, entry: Origin, policy: OutboundPolicy, limits: Limits) -> bytes:
    with anyio.fail_after(limits.total_timeout):
        addresses = await _resolve(target, entry, policy)
        timeout = httpx.Timeout(
            connect=limits.connect_timeout,
            read=limits.read_timeout,
            write=limits.read_timeout,
            pool=limits.connect_timeout,
        )
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            last: Exception | None = None
            for address in addresses:
                try:
                    return await _get(client, target, address, limits)
                except httpx.ConnectError as exc:
                    last = exc  # the next address of the name, if any
                except httpx.HTTPError as exc:
                    raise OutboundRefused(f"request failed ({type(exc).__name__})") from None
            raise OutboundRefused(f"could not connect ({type(last).__name__})")


async def _resolve(target: Origin, entry: Origin, policy: OutboundPolicy) -> list[IPAddress]:
    if target.ip is not None:
        found = [target.ip]
    else:
        try:
            infos = await anyio.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError:
            raise OutboundRefused("host name does not resolve") from None
        found = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not found:
        raise OutboundRefused("host name does not resolve")
    for address in found:  # every one: a name with one private address is refused
        if not policy.permits(address, entry):
            raise OutboundRefused(f"resolves to a non-public address ({address})")
    return found


async def _get(
    client: httpx.AsyncClient, target: Origin, address: IPAddress, limits: Limits
) -> bytes:
    literal = f"[{address.compressed}]" if address.version == 6 else address.compressed
    default = DEFAULT_PORTS[target.scheme] == target.port
    host_header = target.host if default else f"{target.host}:{target.port}"
    if target.ip is not None and target.ip.version == 6:
        host_header = f"[{target.host}]" if default else f"[{target.host}]:{target.port}"
    request = client.build_request(
        "GET",
        f"{target.scheme}://{literal}:{target.port}{target.path}",
        headers={"Host": host_header, "Accept": "application/json", "Accept-Encoding": "identity"},
        # TLS is checked against the name, though the connection goes to the address.
        extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
    )
    response = await client.send(request, stream=True)
    try:
        if response.status_code != 200:
            raise OutboundRefused(f"answered {response.status_code}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_bytes:
            raise OutboundRefused(f"body larger than {limits.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > limits.max_bytes:
                raise OutboundRefused(f"body larger than {limits.max_bytes} bytes")
        return bytes(body)
    finally:
        await response.aclose()
