"""Where an outgoing webhook may send: the URL's host turned into addresses once, each checked.

A subscription makes the hub send requests wherever an admin (or whoever holds an admin token)
points it, so its URL is untrusted input (server-side request forgery):

- The host becomes addresses the way a request would use them: IPv6 literals; IPv4 written in
  any spelling URLs and the C library accept (``2852039166``, ``0xa9fe.0xa9fe``, octal, a
  trailing dot: the WHATWG URL rules); names through ``resolve`` (the system resolver; tests
  put their own in its place, so they never need DNS).
- Every address must be public (``is_global``, not multicast or reserved). An IPv6 address that
  carries an IPv4 one (mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``, NAT64
  ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo) is judged by that IPv4 address too: that is
  where its packets end up.
- ``security.webhook_allowed_networks`` lets receivers on the hub's own network through
  (private ranges, loopback); link-local and metadata addresses (``BLOCKED_NETWORKS``) stay
  refused whatever it lists.
- The request goes to an address that was checked (``Destination.request_url``): the URL
  carries the address, while the ``Host`` header and, for https, the TLS server name (SNI, and
  the certificate check) carry the name. Nothing resolves the name a second time, so a DNS
  answer that changes between the check and the connection (rebinding) changes nothing.

This is done when subscribing (an answer the admin sees at once) and again before every
delivery attempt (DNS changes; so may the allowed networks).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from tongdai.core.errors import DestinationRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Never a webhook's destination, even inside an allowed network: link-local v4/v6 (cloud
# metadata services hand out the host's credentials at 169.254.169.254), AWS's IPv6 metadata
# address, "this host" and multicast.
BLOCKED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "0.0.0.0/8", "::/128", "224.0.0.0/4",
    "ff00::/8"))
# Not public, though Python 3.11's ``is_global`` says they are: the IETF protocol assignments
# block and local-use NAT64 (its IPv4 part is not at a fixed place to check).
_NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "64:ff9b:1::/48"))
# IPv6 prefixes whose last 32 bits are an IPv4 address: IPv4-compatible (deprecated), NAT64
# (RFC 6052) and SIIT-translated.
_IPV4_IN_LAST_32 = tuple(ipaddress.ip_network(n) for n in (
    "::/96", "64:ff9b::/96", "::ffff:0:0:0/96"))
_REFUSED = "a link-local/metadata, this-host or multicast address webhooks never go to"
_PRIVATE = ("not a public address (list its network in security.webhook_allowed_networks for a "
            "receiver on your own network)")
_NUMBER = re.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)")


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to on this machine (/etc/hosts, DNS), in order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Looked up at each call (not bound at import), so tests can put a fake resolver here.
resolve: Resolver = system_resolve


def _carried_ipv4(a: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, compatible, NAT64, 6to4, Teredo)."""
    if isinstance(a, ipaddress.IPv4Address):
        return None
    if a.ipv4_mapped is not None:
        return a.ipv4_mapped
    if a.sixtofour is not None:
        return a.sixtofour
    if a.teredo is not None:
        return a.teredo[1]
    if int(a) > 1 and any(a in n for n in _IPV4_IN_LAST_32):  # not :: or ::1 themselves
        return ipaddress.IPv4Address(int(a) & 0xFFFFFFFF)
    return None


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why the hub must not connect to ``address`` (a phrase), or None when it may."""
    v4 = _carried_ipv4(address)
    seen = (address, v4) if v4 is not None else (address,)
    if any(a in n for a in seen for n in BLOCKED_NETWORKS):
        return _REFUSED
    if any(a in n for a in seen for n in allowed):
        return None
    judged = v4 or address  # a wrapper of an IPv4 address is judged by where it leads
    if not judged.is_global or judged.is_multicast or judged.is_reserved \
            or any(judged in n for n in _NOT_GLOBAL):
        return _PRIVATE
    return None


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 address as URLs spell it: decimal, 0x hex or 0-prefixed octal."""
    try:
        if part[:2] in ("0x", "0X"):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part[0] == "0":
            return int(part, 8)
        return int(part, 10)
    except ValueError:
        return None


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as the IPv4 address it means to a browser or the C library (WHATWG URL rules:
    one to four parts, each decimal, octal or hex; a trailing dot), or None for a name.
    DestinationRefused when it ends in a number yet is no address (``1.2.3.999``)."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _NUMBER.fullmatch(parts[-1]):
        return None  # a name: its last label is not a number
    numbers = [_ipv4_number(p) if p else None for p in parts]
    if len(numbers) > 4 or None in numbers:
        raise DestinationRefused(f"{host} is neither a host name nor an IPv4 address")
    *high, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in high) or last >= 256 ** (4 - len(high)):
        raise DestinationRefused(f"{host} is neither a host name nor an IPv4 address")
    return ipaddress.IPv4Address(sum(n << 8 * (3 - i) for i, n in enumerate(high)) + last)


@dataclass(frozen=True, slots=True)
class Destination:
    """A webhook URL whose host's addresses were all checked; requests go to one of them."""

    url: httpx.URL
    name: str | None                  # the host name as resolved (IDNA); None: an IP literal
    addresses: tuple[Address, ...]

    def request_url(self, address: Address) -> httpx.URL:
        """The URL to request: the checked address in place of the host."""
        return self.url.copy_with(host=str(address))

    def headers(self) -> dict[str, str]:
        """``Host`` as the subscriber wrote it (an IP literal's own URL already says it)."""
        return {"Host": self.url.netloc.decode("ascii")} if self.name else {}

    def extensions(self) -> dict[str, str]:
        """For https to a name: TLS sends it (SNI) and checks the certificate against it,
        not against the address the request connects to."""
        if self.name and self.url.scheme == "https":
            return {"sni_hostname": self.name.rstrip(".")}
        return {}


def _describe(host: str, address: Address, verb: str) -> str:
    return f"{host} {verb} {address}" if host != str(address) else str(address)


def check(url: str, allowed: Sequence[Network] = ()) -> Destination:
    """Resolve ``url``'s host and check every address; DestinationRefused names the first
    refused one (or says the host does not resolve)."""
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError):
        raise DestinationRefused(f"{url[:100]!r} is not a valid URL") from None
    if not host:
        raise DestinationRefused("the URL has no host")
    name: str | None = None
    if ":" in host:  # an IPv6 literal (the brackets are off)
        if "%" in host:
            raise DestinationRefused(f"{host}: IPv6 zone ids are not allowed in webhook URLs")
        try:
            addresses: list[Address] = [ipaddress.IPv6Address(host)]
        except ValueError:
            raise DestinationRefused(f"{host} is not an IPv6 address") from None
    elif (v4 := numeric_ipv4(host)) is not None:
        addresses = [v4]
    else:
        name = host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            found = resolve(host, port)
            addresses = [ipaddress.ip_address(a.partition("%")[0]) for a in found]
        except (OSError, UnicodeError, ValueError) as exc:
            raise DestinationRefused(f"{host} does not resolve ({exc})") from None
        if not addresses:
            raise DestinationRefused(f"{host} does not resolve (no addresses)")
    for address in addresses:
        why = refusal(address, allowed)
        if why:
            raise DestinationRefused(
                f"refused: {_describe(host, address, 'resolves to' if name else 'is')}, {why}")
    return Destination(parsed, name, tuple(addresses))
