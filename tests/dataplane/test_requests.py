"""Cross-format targets, per-request preferences, the decision trail, and bad input — through the data plane."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.dataplane.conftest import Env

pytestmark = pytest.mark.integration

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("blocked", "target"), [(("oa",), "an/claude-x"), (("oa", "an"), "gg/gem-x")])
async def test_anthropic_and_gemini_targets_answer_in_the_openai_shape(
    env: Env, blocked: tuple[str, ...], target: str
) -> None:
    for p in blocked:
        env.sim.set_fault(p, "region_blocked")
    raw = await env.aclient.chat.completions.with_raw_response.create(model="cross", messages=MSG)
    c = raw.parse()
    assert raw.headers["x-turnout-target"] == target
    assert target in (c.choices[0].message.content or "") and c.usage is not None and c.usage.completion_tokens > 0
    stream = await env.aclient.chat.completions.create(
        model="cross", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [ch async for ch in stream]
    assert target in "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert any(ch.usage is not None for ch in chunks)


async def test_explicit_provider_model_goes_to_that_target_only(env: Env) -> None:
    raw = await env.aclient.chat.completions.with_raw_response.create(model="an/claude-x", messages=MSG)
    assert raw.headers["x-turnout-target"] == "an/claude-x"
    env.sim.set_fault("an", "overloaded")
    with pytest.raises(openai.InternalServerError):
        await env.aclient.chat.completions.create(model="an/claude-x", messages=MSG)


async def test_preferences_in_body_and_headers(env: Env) -> None:
    raw = await env.aclient.chat.completions.with_raw_response.create(
        model="cross", messages=MSG, extra_body={"turnout": {"order": ["gg"]}}
    )
    assert raw.headers["x-turnout-target"] == "gg/gem-x"
    raw = await env.aclient.chat.completions.with_raw_response.create(
        model="main", messages=MSG, extra_headers={"x-turnout-deny-jurisdictions": "us"}
    )
    assert raw.headers["x-turnout-target"] == "ob/gpt-x"
    raw = await env.aclient.chat.completions.with_raw_response.create(
        model="main", messages=MSG, extra_body={"turnout": {"require_zero_retention": True}}
    )
    assert raw.headers["x-turnout-target"] == "ob/gpt-x"
    raw = await env.aclient.chat.completions.with_raw_response.create(
        model="cross", messages=MSG, extra_body={"turnout": {"max_price": 5}}
    )
    assert raw.headers["x-turnout-target"] == "gg/gem-x"  # oa (8) and an (15) cost more per million output tokens


async def test_allow_fallbacks_false_gives_503_instead_of_another_target(env: Env) -> None:
    env.sim.set_fault("oa", "overloaded")
    with pytest.raises(openai.InternalServerError) as info:
        await env.aclient.chat.completions.create(
            model="main", messages=MSG, extra_body={"turnout": {"allow_fallbacks": False}}
        )
    assert [a["target"] for a in info.value.response.json()["error"]["attempts"]] == ["oa/gpt-x"]
    assert env.requests("ob") == 0


async def test_debug_adds_the_decision_trail_to_headers_and_json(env: Env) -> None:
    env.sim.set_fault("oa", "region_blocked")
    raw = await env.aclient.chat.completions.with_raw_response.create(
        model="main",
        messages=MSG,
        extra_headers={"x-turnout-debug": "1"},
        extra_body={"turnout": {"deny_jurisdictions": ["cn"]}},
    )
    trail = json.loads(raw.headers["x-turnout-decision"])
    assert trail["candidates"] == ["oa/gpt-x", "ob/gpt-x"]
    assert [(a["target"], a["error_class"]) for a in trail["attempts"]] == [
        ("oa/gpt-x", "region_blocked"),
        ("ob/gpt-x", "ok"),
    ]
    body = json.loads(raw.http_response.content)
    assert body["turnout"]["attempts"] == trail["attempts"]
    assert "sim-test-key" not in raw.headers["x-turnout-decision"]  # the upstream credential never leaks


async def test_skip_reasons_are_in_the_trail(env: Env) -> None:
    body = {"model": "cross", "messages": MSG, "turnout": {"deny_jurisdictions": ["us"], "debug": True}}
    async with aiohttp.ClientSession() as s, s.post(f"{env.url}/chat/completions", json=body) as r:
        assert r.status == 503
        trail = json.loads(r.headers["x-turnout-decision"])
        assert (await r.json())["error"]["turnout"] == trail
    assert {s["target"] for s in trail["skipped"]} == {"oa/gpt-x", "an/claude-x", "gg/gem-x"}
    assert all("deny_jurisdictions" in s["reason"] for s in trail["skipped"])


async def test_models_lists_routes(env: Env) -> None:
    models = await env.aclient.models.list()
    assert [m.id for m in models.data] == ["main", "cross"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (b'{"model": "main"}', 400, "messages"),
        (b'{"model": "main", "messages": [], "stream": "yes"}', 400, "messages"),
        (b'{"model": "main", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "stream"),
        (
            b'{"model": "main", "messages": [{"role": "user", "content": "x"}], "turnout": {"max_price": "x"}}',
            400,
            "turnout.max_price",
        ),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
    ],
)
async def test_bad_requests_get_an_openai_error_naming_the_field(
    env: Env, body: bytes, status: int, param: str
) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{env.url}/chat/completions", data=body, headers={"content-type": "application/json"}) as r,
    ):
        assert r.status == status
        err = (await r.json())["error"]
    assert err["param"] == param and param in err["message"]
    assert env.requests("oa") == 0 and env.rt.sink.observations == []


async def test_body_over_the_limit_is_413(make_env: object) -> None:
    env: Env = await make_env("server: {max_body_bytes: 1000}")  # type: ignore[operator]
    big = json.dumps({"model": "main", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{env.url}/chat/completions", data=big, headers={"content-type": "application/json"}) as r,
    ):
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "request_too_large"
    with pytest.raises(openai.APIStatusError) as info:
        await env.aclient.chat.completions.create(model="main", messages=[{"role": "user", "content": "x" * 5000}])
    assert info.value.status_code == 413


async def test_a_reloaded_config_applies_to_the_next_request(env: Env) -> None:
    from tests.dataplane.conftest import parse_with_key, turnout_yaml
    from tests.dataplane.helpers import make_table

    new = parse_with_key(turnout_yaml(env.sim, routes="  - {name: extra, targets: [gg/gem-x]}\n"))
    env.rt.config = new
    env.rt.table_source.table = make_table(new, version=2)
    assert [m.id for m in (await env.aclient.models.list()).data] == ["main", "cross", "extra"]
    raw = await env.aclient.chat.completions.with_raw_response.create(model="extra", messages=MSG)
    assert raw.headers["x-turnout-target"] == "gg/gem-x" and raw.headers["x-turnout-table-version"] == "2"
