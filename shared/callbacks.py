"""Webhooks: where a callback may go, how its body is signed, and when a failed one is tried again.

A callback_url is checked when it is submitted (a clear 422) and again before every delivery,
against the addresses its host resolves to then; the delivery connects to the address that was
checked, so a name that resolves elsewhere between the two (DNS rebinding) reaches nothing the
allow-list refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

JOB_FINISHED, BATCH_FINISHED = "job.finished", "batch.finished"
SIGNATURE_HEADER = "Recog-Signature"
# Longer than any URL a person would register, short enough to keep a row small.
MAX_URL_LENGTH = 2048
# A delivery's state in the views: before the job or batch ends, while it is tried, and after.
WAITING, RETRYING, DELIVERED, GAVE_UP = "waiting", "retrying", "delivered", "gave_up"
# The backoff between tries: 5 s, then three times as long each time, never more than an hour.
FIRST_DELAY, DELAY_FACTOR, MAX_DELAY = 5.0, 3.0, 3600.0
PUBLIC = "public"


class CallbackRefused(ValueError):
    """The URL cannot be called back; the message says why, for the person who sent it."""


@dataclass(frozen=True)
class Target:
    """A callback URL and the one address it is delivered to."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def ascii_host(self) -> str:
        """The host as it goes on the wire (Host header, TLS name): IDNA for a name in Unicode."""
        return ascii_host(self.host)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.ascii_host
        return host if self.port == default else f"{host}:{self.port}"


def ascii_host(host: str) -> str:
    return host if host.isascii() else host.encode("idna").decode("ascii")


# IPv6 addresses that carry an IPv4 one a router reaches in their stead (NAT64) or that stand for
# it (IPv4-compatible): judged by the IPv4 address, so 64:ff9b::a9fe:a9fe is the metadata address.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# A local-use NAT64 prefix (RFC 8215) may put the IPv4 address anywhere: never taken for public.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    compatible = address in IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1
    if compatible or address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: tuple[str, ...]) -> bool:
    """An IPv6 address that carries an IPv4 one is judged by the IPv4 one alone."""
    inner = embedded_ipv4(address) if address.version == 6 else None
    if inner is not None:
        return allowed(inner, allow)
    for entry in allow:
        if entry == PUBLIC:
            if address.is_global and not address.is_multicast and address not in LOCAL_NAT64:
                return True
        elif address in ipaddress.ip_network(entry, strict=False):
            return True
    return False


def check_allow(allow: tuple[str, ...]) -> None:
    """Raises ValueError naming an entry that is neither "public" nor a network."""
    for entry in allow:
        if entry != PUBLIC:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"RECOG_CALLBACK_ALLOW: {entry!r} is neither 'public' nor an address or network"
                ) from None


def parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a URL a callback may be sent to."""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(f"callback_url {url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(f"callback_url {url!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise CallbackRefused(
            "callback_url must not carry a user or password: the signature proves the sender"
        )
    try:
        ascii_host(parts.hostname)
    except UnicodeError:
        raise CallbackRefused(f"callback_url's host {parts.hostname!r} is not a valid host name") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def resolve(url: str, allow: tuple[str, ...]) -> Target:
    """The URL with the first address its host resolves to that the allow-list lets through."""
    scheme, host, port, path = parse(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CallbackRefused(f"callback_url's host {host!r} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    for text in addresses:
        if allowed(ipaddress.ip_address(text.split("%")[0]), allow):
            return Target(url, scheme, host, port, path, text)
    raise CallbackRefused(
        f"callback_url's host {host!r} resolves to {', '.join(addresses)}, which this service may not "
        f"call (RECOG_CALLBACK_ALLOW is {','.join(allow)}); use a public address"
    )


def sign(secret: str, body: bytes, at: int) -> str:
    """The Recog-Signature header's value: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (and the tests): the signature matches and is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        at = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, at).split("v1=", 1)[1]
    return abs(now - at) <= tolerance and hmac.compare_digest(expected, fields.get("v1", ""))


def delay(tries: int) -> float:
    """Seconds before the next try after `tries` failed ones, with up to a tenth of jitter so the
    callbacks of one outage do not all come back at once."""
    base = min(FIRST_DELAY * DELAY_FACTOR ** (tries - 1), MAX_DELAY)
    return base * (1 + random.random() / 10)
