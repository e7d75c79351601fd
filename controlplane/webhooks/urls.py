"""Webhook URL rules and the SSRF guard: http/https only; private, loopback, link-local and other
non-public destinations refused unless allow-listed (`config.webhooks.allow_private_networks`).

Checked twice: when an endpoint is created (the URL as written, and what its name resolves to now) and at
every delivery, through `GuardedResolver`, which drops non-public answers so a name that re-binds to an
internal address after creation (DNS rebinding) is refused. Redirects are never followed (the dispatcher
passes `allow_redirects=False`), so a public endpoint cannot bounce a delivery inside.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

__all__ = ["WebhookUrlError", "validate_url", "check_resolved", "is_allowed_address", "GuardedResolver"]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048


class WebhookUrlError(ValueError):
    """A webhook URL that Turnout will not call; `problem` says why (safe to show to the caller)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def _networks(allow: Sequence[str]) -> tuple[_Net, ...]:
    return _parse_networks(tuple(allow))


@functools.lru_cache(maxsize=64)
def _parse_networks(allow: tuple[str, ...]) -> tuple[_Net, ...]:  # parsed once per allow-list, not per delivery
    return tuple(ipaddress.ip_network(n, strict=False) for n in allow)


def _public(ip: _IP) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback, not a public v6 address
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def is_allowed_address(address: str, allow: Sequence[str]) -> bool:
    """True for a public address, or a non-public one inside an allow-listed network."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # strip an IPv6 zone id
    except ValueError:
        return False
    if _public(ip):
        return True
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c in net for c in candidates for net in _networks(allow) if c.version == net.version)


def validate_url(url: str, allow: Sequence[str]) -> str:
    """Check a URL as written (scheme, host, port, literal addresses, `localhost`); return it normalised.

    Raises WebhookUrlError naming the problem. Names are resolved separately (`check_resolved`).
    """
    if not isinstance(url, str) or not url.strip():
        raise WebhookUrlError("url is empty")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"url is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError(f"url scheme must be http or https, got {parts.scheme or '(none)'!r}")
    host = parts.hostname
    if not host:
        raise WebhookUrlError("url has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError(
            "url must not contain credentials (user:password@); sign with the endpoint secret instead"
        )
    if port == 0:
        raise WebhookUrlError("url port 0 is not valid")
    if any(c.isspace() for c in url):
        raise WebhookUrlError("url must not contain whitespace")
    try:
        literal: _IP | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        if not is_allowed_address(str(literal), allow):
            raise WebhookUrlError(f"destination {host} is a private, loopback or link-local address (not allow-listed)")
    elif host.lower() == "localhost" or host.lower().endswith(".localhost"):
        if not is_allowed_address("127.0.0.1", allow):
            raise WebhookUrlError(f"destination {host} is loopback (not allow-listed)")
    return url


async def check_resolved(url: str, allow: Sequence[str]) -> None:
    """Resolve the URL's host now and refuse it when any answer is non-public and not allow-listed.

    A name that does not resolve is accepted here (it may exist later); delivery checks again.
    """
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return  # literal addresses were checked by validate_url
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return
    for info in infos:
        address = str(info[4][0])
        if not is_allowed_address(address, allow):
            raise WebhookUrlError(f"destination {host} resolves to {address}, a non-public address (not allow-listed)")


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that only returns allowed addresses; none left → OSError (a refused delivery).

    aiohttp does not call the resolver for literal IP hosts, so the dispatcher also re-runs `validate_url`.
    """

    def __init__(self, allow: Sequence[str], inner: AbstractResolver | None = None) -> None:
        self._allow = list(allow)
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        kept = [a for a in answers if is_allowed_address(a["host"], self._allow)]
        if not kept:
            raise OSError(f"refused: {host} resolves only to non-public addresses (SSRF guard)")
        return kept

    async def close(self) -> None:
        await self._inner.close()
