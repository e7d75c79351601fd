from __future__ import annotations

import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from controlplane.webhooks.urls import GuardedResolver, WebhookUrlError, is_allowed_address, validate_url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("http://", "no host"),
        ("http://127.0.0.1/hook", "private, loopback or link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:8080/", "private, loopback"),
        ("http://[::ffff:127.0.0.1]/", "private, loopback"),
        ("http://0.0.0.0/", "private"),
        ("http://localhost:9000/", "loopback"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com:99999/", "not valid"),
        ("", "empty"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(WebhookUrlError, match=problem):
        validate_url(url, [])


def test_public_and_allow_listed_urls_pass() -> None:
    assert validate_url("https://hooks.example.com/x?a=1", []) == "https://hooks.example.com/x?a=1"
    assert validate_url("https://93.184.216.34/x", [])
    assert validate_url("http://127.0.0.1:9/x", ["127.0.0.0/8"])
    assert validate_url("http://localhost:9/x", ["127.0.0.0/8"])
    with pytest.raises(WebhookUrlError):
        validate_url("http://10.0.0.1/", ["127.0.0.0/8"])


def test_ipv4_mapped_ipv6_is_judged_as_its_ipv4() -> None:
    assert not is_allowed_address("::ffff:10.0.0.1", [])
    assert is_allowed_address("::ffff:127.0.0.1", ["127.0.0.0/8"])


class _Scripted(AbstractResolver):
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0) for a in self.answers]

    async def close(self) -> None:
        pass


async def test_resolver_refuses_a_name_that_rebinds_to_a_private_address() -> None:
    guard = GuardedResolver([], _Scripted(["10.0.0.5", "192.168.1.1"]))
    with pytest.raises(OSError, match="SSRF"):
        await guard.resolve("rebind.example", 80)


async def test_resolver_keeps_only_public_answers() -> None:
    guard = GuardedResolver([], _Scripted(["10.0.0.5", "93.184.216.34"]))
    assert [a["host"] for a in await guard.resolve("mixed.example", 80)] == ["93.184.216.34"]
    allowed = GuardedResolver(["127.0.0.0/8"], _Scripted(["127.0.0.1"]))
    assert [a["host"] for a in await allowed.resolve("local.test", 80)] == ["127.0.0.1"]


async def test_delivery_to_a_name_that_rebinds_to_a_private_address_is_refused() -> None:
    import aiohttp
    from sqlalchemy import create_engine

    from controlplane.clock import SystemClock
    from controlplane.config import WebhookConfig
    from controlplane.webhooks.dispatcher import Dispatcher

    connector = aiohttp.TCPConnector(resolver=GuardedResolver([], _Scripted(["10.0.0.5"])))
    async with aiohttp.ClientSession(connector=connector) as http:
        # attempt() alone never touches the database: an unused in-memory engine
        d = Dispatcher(engine=create_engine("sqlite://"), clock=SystemClock(), config=WebhookConfig(), http=http)
        result = await d.attempt("http://rebind.example:8080/hook", "msg_1", "whsec_AAAA", b"{}")
    assert not result.ok and result.status is None
    assert result.error is not None and "SSRF guard" in result.error
