"""Bad input: config fuzzing, data-plane request fuzzing, oversized bodies and headers, slow clients.

Adapter response/stream parsers are fuzzed in tests/adapters/test_fuzz.py and the status API by schemathesis
in tests/api; this file covers the remaining doors: the config file and the data plane's own listener.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sim import Simulator
from controlplane.config_loader import parse_config
from controlplane.errors import ConfigError
from dataplane.http.listener import Listener, start_listener
from dataplane.proxy import build_data_app
from tests.chaos.conftest import SOAK, parse, sim_config, turnout_config
from tests.dataplane.helpers import Rt, StaticTables, make_table
from tests.fakes import FakeClock
from tests.support import free_port

EXAMPLES = 600 if SOAK else 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

# -- config -------------------------------------------------------------------------------------------
VALID: dict[str, Any] = {
    "server": {"max_body_bytes": 1000},
    "auth": {"tokens": [{"token": "t", "scope": "admin"}]},
    "providers": [
        {
            "id": "a",
            "adapter": "openai",
            "base_url": "http://127.0.0.1:1",
            "api_key": "${K}",
            "models": [{"name": "m", "price": {"input": 1, "output": 2}}],
        }
    ],
    "routes": [{"name": "r", "targets": ["a/m"], "policy": {"max_price": 3}}],
    "probes": {"interval": "15s", "kinds": {"catalogue": {"interval": "1m"}}},
    "breaker": {"window": "60s", "min_calls": 5},
    "webhooks": {"allow_private_networks": ["127.0.0.0/8"], "retry_schedule": ["1s"]},
    "dataplane": {"total_timeout": "2m"},
}
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["${K}", "${MISSING}", "1s", "-5s", "1e400", "nan", "inf", "0", "", "acme/x", "a/m"]),
)
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(VALID)[1:]


def _mutate(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def test_the_seed_config_is_valid() -> None:
    parse_config(yaml.safe_dump(VALID), env={"K": "secret"})


@FUZZ
@given(path=st.sampled_from(PATHS), value=values)
def test_config_with_any_field_set_to_anything_gives_config_error_or_config(path: tuple[Any, ...], value: Any) -> None:
    text = yaml.safe_dump(_mutate(VALID, path, value), allow_unicode=True)
    try:
        parse_config(text, env={"K": "secret"})
    except ConfigError as exc:
        assert str(exc) and "secret" not in str(exc)  # names the problem; never echoes a resolved secret


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.lists(
            st.sampled_from(
                [
                    "providers:",
                    "\n",
                    "  - ",
                    "id: a",
                    "{",
                    "}",
                    "[",
                    "]",
                    ": ",
                    "&a",
                    "*a",
                    "!!python/object",
                    "!!binary",
                    "${K}",
                    "routes:",
                    "- name: r",
                    "\t",
                    "'",
                    '"',
                    "? ",
                    "%YAML 1.2",
                    "---",
                ]
            ),
            max_size=40,
        ).map("".join),
    )
)
def test_config_loading_of_arbitrary_text_raises_only_config_error(text: str) -> None:
    try:
        parse_config(text, env={"K": "secret"})
    except ConfigError:
        pass


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,  # deep nesting: the parser's recursion limit
        "a: &a [" + ", ".join(["*a"] * 3) + "]",  # a self-referencing alias
        "providers: !!python/object/apply:os.system ['true']",  # a constructor safe_load refuses
        "providers:\n  - {id: a, adapter: openai, base_url: 'http://x', models: [{name: m}]}\n" + "x: " + "9" * 5000,
        "\ufeffproviders: []",
    ],
)
def test_hostile_config_texts_give_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_config(text, env={})


# -- the data plane's listener ------------------------------------------------------------------------
class _Served:
    def __init__(self, port: int, sim: Simulator, loop: asyncio.AbstractEventLoop) -> None:
        self.port, self.sim, self.loop = port, sim, loop

    def request(self, body: bytes, headers: dict[str, str] | None = None, timeout: float = 15) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(
                "POST",
                "/v1/chat/completions",
                body=body,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                return resp.status, raw
        finally:
            conn.close()


@pytest.fixture(scope="module")
def served() -> Iterator[_Served]:
    """The data plane (with a static table, in front of the simulator) on its own loop in a thread, so blocking
    clients and hypothesis can drive it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()

    async def start() -> tuple[Simulator, Listener]:
        sim = Simulator.from_yaml(sim_config(), clock=FakeClock(), admin=False)
        await sim.start()
        raw = turnout_config(sim, "sqlite:///:memory:")
        raw["server"]["max_body_bytes"] = 16 * 1024
        cfg = parse(raw)
        app = build_data_app(Rt(cfg, StaticTables(make_table(cfg))))
        listener = await start_listener(app, "127.0.0.1", port, shutdown_timeout=1.0)  # as turnout serve runs it
        return sim, listener

    sim, runner = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield _Served(port, sim, loop)
    finally:

        async def stop() -> None:
            await runner.cleanup()
            await sim.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=10,
)
message = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "x", ""]), "content": json_values}
    ),
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.sampled_from(["main", "pair", "oa/gpt-x", "nope", ""]), json_values),
        "messages": st.one_of(st.lists(message, max_size=3), json_values),
        "stream": st.one_of(st.booleans(), json_values),
        "max_tokens": json_values,
        "temperature": json_values,
        "tools": json_values,
        "stream_options": json_values,
        "turnout": json_values,
        "user": json_values,
        "n": json_values,
    },
)


@pytest.mark.integration
@FUZZ
@given(body=bodies)
def test_data_plane_answers_any_json_body_without_a_5xx_and_names_the_field(
    served: _Served, body: dict[str, Any]
) -> None:
    status, out = served.request(json.dumps(body).encode())
    assert status < 500 or status == 503, (status, out)  # 503 only when no target could answer (never a crash)
    if status >= 400:
        assert isinstance(out, dict) and isinstance(out.get("error"), dict), out
        if status == 400 and out["error"].get("code") == "invalid_value":
            assert out["error"]["param"] and out["error"]["param"] in out["error"]["message"]


@pytest.mark.integration
@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_data_plane_answers_any_bytes_with_400_not_500(served: _Served, raw: bytes) -> None:
    status, out = served.request(raw)
    assert status in (400, 404, 200, 503) or 400 <= status < 500, (status, out)
    if status == 400:
        assert out["error"]["param"]


@pytest.mark.integration
def test_oversized_body_is_413_with_or_without_content_length(served: _Served) -> None:
    big = json.dumps({"model": "pair", "messages": [{"role": "user", "content": "x" * 40_000}]}).encode()
    status, out = served.request(big)
    assert status == 413 and out["error"]["code"] == "request_too_large"
    # chunked: no Content-Length to check up front, the limit still holds while reading
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=15)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=iter([big[i : i + 4096] for i in range(0, len(big), 4096)]),
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        assert resp.status == 413, resp.read()
    finally:
        conn.close()


def _raw(port: int, data: bytes) -> bytes:
    """Send raw bytes; return the whole answer (the server closes the connection after refusing a request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


@pytest.mark.integration
def test_oversized_headers_are_refused_and_the_listener_keeps_serving(served: _Served) -> None:
    for req in (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: a\r\n" % i for i in range(500))
        + b"\r\n",
        b"POST /v1/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        head = _raw(served.port, req)
        assert head.startswith(b"HTTP/1.") and int(head.split()[1]) in (400, 413, 414, 431), head
    ok = json.dumps({"model": "pair", "messages": [{"role": "user", "content": "hi"}]}).encode()
    assert served.request(ok)[0] == 200


@pytest.mark.integration
def test_oversized_headers_get_431(served: _Served) -> None:
    head = _raw(served.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    assert int(head.split()[1]) == 431
    many = _raw(
        served.port,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: a\r\n" % i for i in range(500))
        + b"\r\n",
    )
    assert int(many.split()[1]) == 431


@pytest.mark.integration
def test_an_oversized_request_line_gets_414(served: _Served) -> None:
    head = _raw(served.port, b"POST /v1/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert int(head.split()[1]) == 414


@pytest.mark.integration
def test_a_refused_oversized_header_is_not_echoed_back(served: _Served) -> None:
    head = _raw(
        served.port,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-own-token"
        + b"a" * 20_000
        + b"\r\n\r\n",
    )
    assert b"sk-own-token" not in head


@pytest.mark.integration
def test_slowloris_clients_cannot_exhaust_connections(served: _Served) -> None:
    """Many half-open connections trickle header bytes; ordinary requests keep succeeding meanwhile."""
    n = 600 if SOAK else 200
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        ok = json.dumps({"model": "pair", "messages": [{"role": "user", "content": "hi"}]}).encode()
        rounds = 6 if SOAK else 3
        for r in range(rounds):
            for i, s in enumerate(socks):
                s.sendall(b"X-%d-%d: a\r\n" % (r, i))  # a header line now and then: never finishing the request
            t0 = time.monotonic()
            statuses = [served.request(ok, timeout=10)[0] for _ in range(5)]
            assert statuses == [200] * 5
            assert time.monotonic() - t0 < 10
    finally:
        for s in socks:
            s.close()
