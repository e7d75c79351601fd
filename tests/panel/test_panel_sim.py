"""Panel routes end to end: the real data plane in front of the simulator (deterministic per-provider answers)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine, select
from sqlmodel import Session

from controlplane.decisions import DecisionRow
from dataplane.proxy import DATA_STATE
from tests.panel.conftest import ANSWERS, MSG, PRICES, Env
from tests.support import until as _until

pytestmark = pytest.mark.integration

MakeEnv = Callable[..., Awaitable[Env]]


def _content(doc: dict[str, Any]) -> str:
    return str(doc["choices"][0]["message"]["content"])


async def _ask(env: Env, *, debug: bool = True, **body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    resp = await env.post({"model": "fusion", "messages": MSG, **body}, {"x-turnout-debug": "1"} if debug else None)
    return resp.status, json.loads(await resp.read()), dict(resp.headers)


async def test_synthesizer_receives_every_surviving_answer_and_the_judge_analysis(env: Env) -> None:
    status, doc, headers = await _ask(env)
    assert status == 200, doc
    assert _content(doc) == ANSWERS["sy"]
    # Members in table order, one per provider: frontier's oa and an, then cheap's ob; gg is only a spare.
    assert headers["x-turnout-panel-members"] == "oa/gpt-x,an/claude-x,ob/gpt-x"
    assert env.sim.requests("gg") == 0
    judged = env.judge.prompt()
    for p in ("oa", "an", "ob"):
        assert ANSWERS[p] in judged
    assert "What is the capital of France?" in judged
    synthesized = env.synth.prompt()
    for p in ("oa", "an", "ob"):
        assert ANSWERS[p] in synthesized
    assert ANSWERS["jd"] in synthesized  # the judge's analysis
    assert ANSWERS["gg"] not in synthesized
    trail = doc["turnout"]
    assert trail["judge"]["given"] == env.judge.bodies[-1]["messages"][-1]["content"]
    assert [m["target"] for m in trail["members"]] == ["oa/gpt-x", "an/claude-x", "ob/gpt-x"]
    assert all(m["outcome"] == "ok" and m["latency_ms"] is not None for m in trail["members"])
    header_trail = json.loads(headers["x-turnout-decision"])
    assert header_trail["survivors"] == ["oa/gpt-x", "an/claude-x", "ob/gpt-x"]
    assert "given" not in header_trail["judge"]  # too large for a header; the body has it
    # Every call is a live observation.
    assert sorted(o.target for o in env.rt.sink.observations) == sorted(
        ["oa/gpt-x", "an/claude-x", "ob/gpt-x", "jd/judge-x", "sy/synth-x"]
    )


async def test_member_withdrawn_mid_test_is_replaced_by_the_next_admissible_target(env: Env) -> None:
    status, _, headers = await _ask(env)
    assert status == 200
    assert "an/claude-x" in headers["x-turnout-panel-members"]

    env.sim.set_fault("an", "region_blocked")  # withdrawn from this region between two requests
    status, doc, headers = await _ask(env)
    assert status == 200, doc
    assert headers["x-turnout-panel-members"] == "oa/gpt-x,gg/gem-x,ob/gpt-x"  # gg took an's slot
    slot2 = [(m["target"], m["outcome"]) for m in doc["turnout"]["members"] if m["slot"] == 2]
    assert slot2 == [("an/claude-x", "region_blocked"), ("gg/gem-x", "ok")]
    synthesized = env.synth.prompt()
    assert ANSWERS["gg"] in synthesized and ANSWERS["an"] not in synthesized
    assert "region_blocked" in env.rt.sink.classes("an/claude-x")


async def test_hung_member_is_dropped_at_its_deadline_without_delaying_the_answer(make_env: MakeEnv) -> None:
    env = await make_env(panel=", member_deadline: 500ms")
    env.sim.set_fault("ob", "hang")
    t = time.monotonic()
    status, doc, headers = await _ask(env)
    elapsed = time.monotonic() - t
    assert status == 200, doc
    assert 0.45 <= elapsed < 2.0  # waited for the hung member up to its deadline, and not much longer
    assert headers["x-turnout-panel-members"] == "oa/gpt-x,an/claude-x"
    hung = [m for m in doc["turnout"]["members"] if m["target"] == "ob/gpt-x"]
    assert hung and hung[0]["outcome"] == "deadline"
    assert ANSWERS["ob"] not in env.synth.prompt()
    # Cut by the panel's own deadline (shorter than the first-byte timeout): not held against the provider.
    assert env.rt.sink.classes("ob/gpt-x") == []


async def test_usage_and_cost_add_up_over_members_judge_and_synthesizer(make_env: MakeEnv, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    env = await make_env(decision_engine=engine)
    status, doc, headers = await _ask(env)
    assert status == 200
    calls = [*doc["turnout"]["members"], *doc["turnout"]["judge"]["calls"], *doc["turnout"]["synthesizer"]["calls"]]
    assert len(calls) == 5 and all(c["outcome"] == "ok" for c in calls)
    # Each simulated member answers its fixed text: one output token per word.
    for c in doc["turnout"]["members"]:
        assert c["tokens_out"] == len(ANSWERS[c["target"].split("/")[0]].split())
    usage = doc["usage"]
    assert usage["prompt_tokens"] == sum(c["tokens_in"] for c in calls) > 0
    assert usage["completion_tokens"] == sum(c["tokens_out"] for c in calls) > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    expected = sum(
        (c["tokens_in"] * PRICES[c["target"].split("/")[0]][0] + c["tokens_out"] * PRICES[c["target"].split("/")[0]][1])
        / 1e6
        for c in calls
    )
    assert float(headers["x-turnout-cost-usd"]) == pytest.approx(expected, abs=1e-8)
    decisions = env.app[DATA_STATE].decisions
    assert decisions is not None
    await decisions.flush()
    with Session(engine) as s:
        rows = s.execute(select(DecisionRow)).scalars().all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.route, row.outcome, row.target, row.n_attempts) == ("fusion", "ok", "sy/synth-x", 5)
    assert (row.tokens_in, row.tokens_out) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert row.cost_usd == pytest.approx(expected)
    engine.dispose()


async def test_openai_sdk_json_and_stream_succeed_while_one_panel_provider_is_withdrawn(env: Env) -> None:
    env.sim.set_fault("an", "model_gone")
    done = await env.aclient.chat.completions.create(model="fusion", messages=MSG)
    assert done.choices[0].message.content == ANSWERS["sy"]
    assert done.usage is not None and done.usage.completion_tokens > len(ANSWERS["sy"].split())
    stream = await env.aclient.chat.completions.create(
        model="fusion", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    text, usages = "", []
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usages.append(chunk.usage)
    assert text == ANSWERS["sy"]
    assert len(usages) == 1  # only the panel's summed usage, not the synthesizer's own as well
    assert usages[0].completion_tokens == done.usage.completion_tokens
    assert usages[0].prompt_tokens > 0
    assert ANSWERS["gg"] in env.synth.prompt()  # the withdrawn member was replaced in both calls
    assert env.synth.bodies[-1]["stream"] is True


async def test_stream_without_usage_option_carries_no_usage_chunk(env: Env) -> None:
    stream = await env.aclient.chat.completions.create(model="fusion", messages=MSG, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWERS["sy"]
    assert all(c.usage is None for c in chunks)


async def test_below_quorum_is_a_clear_openai_shaped_error(make_env: MakeEnv) -> None:
    env = await make_env()
    for p in ("an", "ob", "gg"):
        env.sim.set_fault(p, "server_error")
    status, doc, _ = await _ask(env, debug=False)
    assert status == 503
    err = doc["error"]
    assert err["code"] == "panel_quorum_not_met" and err["type"] == "service_unavailable"
    assert "1 of 2 required members answered" in err["message"]
    assert env.synth.bodies == [] and env.judge.bodies == []


async def test_below_quorum_degrades_to_the_best_single_answer_when_the_route_says_so(make_env: MakeEnv) -> None:
    env = await make_env(panel=", degrade_to_single: true")
    for p in ("an", "ob", "gg"):
        env.sim.set_fault(p, "server_error")
    status, doc, headers = await _ask(env)
    assert status == 200
    assert _content(doc) == ANSWERS["oa"]
    assert headers["x-turnout-target"] == "oa/gpt-x"
    assert any("degraded" in n for n in doc["turnout"]["notes"])
    stream = await env.aclient.chat.completions.create(
        model="fusion", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWERS["oa"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(ANSWERS["oa"].split())


async def test_judge_fails_over_like_any_route(env: Env) -> None:
    env.sim.set_fault("jd", "overloaded")
    status, doc, _ = await _ask(env)
    assert status == 200
    judge_calls = doc["turnout"]["judge"]["calls"]
    assert [(c["target"], c["outcome"]) for c in judge_calls] == [("jd/judge-x", "overloaded"), ("oa/gpt-x", "ok")]
    assert ANSWERS["oa"] in env.synth.prompt().split("analysis", 1)[-1]  # oa, now judging, wrote the analysis


async def test_synthesizer_failure_without_degrade_is_a_503(env: Env) -> None:
    env.sim.set_fault("sy", "overloaded")
    status, doc, _ = await _ask(env, debug=False)
    assert status == 503
    assert doc["error"]["code"] == "no_admissible_target"
    assert "synthesizer" in doc["error"]["message"]


async def test_tools_are_refused_on_a_panel_route_naming_the_field(env: Env) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    status, doc, _ = await _ask(env, tools=[tool])
    assert status == 400
    assert doc["error"]["param"] == "tools" and "panel route" in doc["error"]["message"]
    assert env.sim.requests() == 0


async def test_custom_templates_shape_what_the_judge_and_synthesizer_see(make_env: MakeEnv) -> None:
    env = await make_env(
        panel=', judge_template: "JUDGE {count}: {answers}", synthesizer_template: "SYN {answers} / {analysis}"'
    )
    status, _, _ = await _ask(env)
    assert status == 200
    assert env.judge.prompt().startswith("JUDGE 3: <answer")
    assert env.synth.prompt().startswith("SYN <answer") and env.synth.prompt().endswith(ANSWERS["jd"])


async def test_member_timing_out_early_is_replaced_while_the_member_deadline_leaves_time(make_env: MakeEnv) -> None:
    env = await make_env(panel=", member_deadline: 3s", first_byte="300ms")
    env.sim.set_fault("ob", "hang")
    t = time.monotonic()
    status, doc, headers = await _ask(env)
    assert status == 200, doc
    assert time.monotonic() - t < 2.5
    assert headers["x-turnout-panel-members"] == "oa/gpt-x,an/claude-x,gg/gem-x"
    slot3 = [(m["target"], m["outcome"]) for m in doc["turnout"]["members"] if m["slot"] == 3]
    assert slot3 == [("ob/gpt-x", "timeout"), ("gg/gem-x", "ok")]
    assert env.rt.sink.classes("ob/gpt-x") == ["timeout"]  # the provider's own timeout is held against it


async def test_debug_stream_starts_with_the_trail_as_an_sse_comment(env: Env) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{env.url}/chat/completions",
            json={"model": "fusion", "messages": MSG, "stream": True},
            headers={"x-turnout-debug": "1"},
        ) as resp:
            raw = (await resp.read()).decode()
            trail = json.loads(resp.headers["x-turnout-decision"])
    assert raw.startswith(": turnout {")
    comment = json.loads(raw.split("\n", 1)[0][len(": turnout ") :])
    assert comment["judge"]["given"] == env.judge.bodies[-1]["messages"][-1]["content"]
    assert trail["survivors"] == ["oa/gpt-x", "an/claude-x", "ob/gpt-x"]
    assert raw.rstrip().endswith("data: [DONE]")


async def test_an_explicit_target_can_sit_on_the_panel(make_env: MakeEnv) -> None:
    env = await make_env(
        routes="  - {name: duo, mode: panel, panel: {from: [gg/gem-x, frontier], size: 2, quorum: 2, synthesizer: sy/synth-x}}\n"
    )
    resp = await env.post({"model": "duo", "messages": MSG})
    doc = json.loads(await resp.read())
    assert resp.status == 200, doc
    assert resp.headers["x-turnout-panel-members"] == "gg/gem-x,oa/gpt-x"
    assert env.judge.bodies == []  # no judge configured: the synthesizer works from the answers alone
    assert "(no analysis available)" in env.synth.prompt()


async def test_streamed_synthesizer_fails_over_before_its_first_chunk(make_env: MakeEnv) -> None:
    env = await make_env(
        panel=", synthesizer: writing", routes="  - {name: writing, targets: [sy/synth-x, gg/gem-x]}\n"
    )
    env.sim.set_fault("sy", "overloaded")
    stream = await env.aclient.chat.completions.create(model="fusion", messages=MSG, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == ANSWERS["gg"]  # gg (a spare member) now writes the synthesis
    assert "overloaded" in env.rt.sink.classes("sy/synth-x")


async def test_members_refusing_the_request_return_the_client_error(make_env: MakeEnv) -> None:
    env = await make_env()
    for p in ("oa", "an", "ob"):
        env.sim.set_fault(p, "context_length")
    status, doc, _ = await _ask(env, debug=False)
    assert status == 400, doc
    assert doc["error"]["type"] == "invalid_request_error"
    assert env.judge.bodies == [] and env.synth.bodies == []
    assert env.sim.requests("gg") == 0  # a refused request is not retried on a replacement


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_leaving_mid_panel_stops_the_members_and_counts_against_no_one(
    make_env: MakeEnv, stream: bool
) -> None:
    env = await make_env(panel=", member_deadline: 5s")
    env.sim.set_fault("ob", "latency", seconds=4)  # still working when the client gives up
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as s:
        with pytest.raises(TimeoutError):
            async with s.post(
                f"{env.url}/chat/completions", json={"model": "fusion", "messages": MSG, "stream": stream}
            ) as r:
                await r.read()
    value = env.rt.metrics.registry.get_sample_value
    await _until(
        lambda: (value("turnout_dataplane_requests_total", {"route": "fusion", "outcome": "client_gone"}) or 0) == 1
    )
    assert env.rt.sink.classes("ob/gpt-x") == []  # the abandoned member is not an outcome
    assert env.judge.bodies == [] and env.synth.bodies == []
    assert env.sim.requests("gg") == 0


@pytest.mark.parametrize("synthesizer", ["an/claude-x", "gg/gem-x"])
async def test_translated_synthesizer_streams_carry_exactly_the_summed_usage(
    make_env: MakeEnv, synthesizer: str
) -> None:
    env = await make_env(panel=f", synthesizer: {synthesizer}")
    stream = await env.aclient.chat.completions.create(
        model="fusion", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWERS[synthesizer.split("/")[0]]
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1 and chunks[-1].usage is usages[0]
    done = await env.aclient.chat.completions.create(model="fusion", messages=MSG)
    assert done.usage is not None
    assert usages[0].completion_tokens == done.usage.completion_tokens  # same panel, same deterministic answers
