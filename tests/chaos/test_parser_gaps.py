"""Fuzzing the provider-facing parsers tests/adapters/test_fuzz.py does not reach: capacity headers
(`headroom`), model catalogues (`list_models`, over real HTTP) and status pages (`assess`). Whatever a provider
sends, each returns a value or raises ProviderError (catalogues); nothing else escapes into a probe loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import ModelListing
from adapters.registry import ADAPTERS, get_adapter
from controlplane.config import ModelConfig, ProviderConfig
from controlplane.errors import ProviderError
from probes.status_page import SEVERITY, assess
from tests.adapters.conftest import CLOUD_FIELDS
from tests.chaos.conftest import SOAK
from tests.support import free_port

FUZZ = settings(
    max_examples=400 if SOAK else 100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
NAMES = sorted(ADAPTERS)
NOW = datetime(2026, 1, 1, tzinfo=UTC)

json_docs = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=10),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "data",
                    "models",
                    "id",
                    "name",
                    "object",
                    "has_more",
                    "last_id",
                    "nextPageToken",
                    "first_id",
                    "components",
                    "incidents",
                    "status",
                    "impact",
                    "indicator",
                    "displayName",
                    "supportedGenerationMethods",
                ]
            ),
            c,
            max_size=5,
        )
    ),
    max_leaves=25,
)

HEADER_NAMES = [
    f"{p}{d}"
    for p in ("x-ratelimit-", "anthropic-ratelimit-")
    for d in (
        "limit-requests",
        "remaining-requests",
        "reset-requests",
        "limit-tokens",
        "remaining-tokens",
        "reset-tokens",
        "requests-limit",
        "requests-remaining",
        "requests-reset",
        "tokens-limit",
        "tokens-remaining",
        "tokens-reset",
        "input-tokens-limit",
        "input-tokens-remaining",
        "output-tokens-limit",
        "output-tokens-remaining",
    )
] + ["retry-after", "retry-after-ms"]
header_values = st.one_of(
    st.text(max_size=16),
    st.sampled_from(
        [
            "-1",
            "0",
            "1e309",
            "nan",
            "inf",
            "-inf",
            "6m0s",
            "1h2m3.5s",
            "2026-01-01T00:00:00Z",
            "99999999999999999999",
            "",
            " 5 ",
            "0.5s",
        ]
    ),
)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=8))
def test_headroom_of_any_capacity_headers_is_a_ratio_or_none(name: str, headers: dict[str, str]) -> None:
    h = get_adapter(name).headroom(headers, NOW)
    assert h is None or 0.0 <= h.ratio <= 1.0, h


@FUZZ
@given(doc=json_docs, components=st.lists(st.sampled_from(["API", "api", "Chat", ""]), max_size=2))
def test_status_page_assessment_of_any_json_is_a_severity(doc: Any, components: list[str]) -> None:
    summary = doc if isinstance(doc, dict) else {"components": doc, "incidents": doc, "status": doc}
    severity, why = assess(summary, components)
    assert severity in set(SEVERITY.values()) | {0} and isinstance(why, str)


# -- catalogues over real HTTP -------------------------------------------------------------------------
class _Catalogue:
    """A loopback server answering every request with the body, status and type the test sets."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes, str] = (200, b"{}", "application/json")
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        status, body, ctype = self.answer
        return web.Response(status=status, body=body, headers={"Content-Type": ctype})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{p:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.session = aiohttp.ClientSession()

    async def _stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


@pytest.fixture(scope="module")
def catalogue() -> Iterator[_Catalogue]:
    c = _Catalogue()
    c.thread.start()
    c.run(c._start())
    try:
        yield c
    finally:
        c.run(c._stop())
        c.loop.call_soon_threadsafe(c.loop.stop)
        c.thread.join(5)
        c.loop.close()


bodies = st.one_of(
    json_docs.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"<html>Bad gateway</html>",
            b'{"data": [{"id": 1}]}',
            b'{"models": "x"}',
            b'{"data": [], "has_more": true, "last_id": null}',
            b'{"models": [{"name": null}], "nextPageToken": 5}',
        ]
    ),
)


@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(
    status=st.sampled_from([200, 200, 200, 404, 429, 500, 503]),
    body=bodies,
    ctype=st.sampled_from(["application/json", "text/html", "text/plain"]),
)
def test_list_models_of_any_answer_is_a_listing_or_provider_error(
    catalogue: _Catalogue, name: str, status: int, body: bytes, ctype: str
) -> None:
    catalogue.answer = (status, body, ctype)
    base = f"http://127.0.0.1:{catalogue.port}"
    cloud = {**CLOUD_FIELDS.get(name, {}), **({"catalogue_url": base} if name == "bedrock" else {})}
    provider = ProviderConfig(id="p", adapter=name, base_url=base, models=[ModelConfig(name="m")], **cloud)

    async def call() -> ModelListing | ProviderError:
        try:
            return await get_adapter(name).list_models(catalogue.session, provider, timeout=5)
        except ProviderError as exc:
            return exc

    out = catalogue.run(call())
    if isinstance(out, ModelListing):
        assert all(isinstance(m, str) for m in out.models), out
    else:
        assert out.classification.error_class is not None
