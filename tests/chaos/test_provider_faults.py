"""Provider faults through the simulator, each checked end to end: what the client gets from the data plane,
what the probes record, the table, the events, the webhooks and the metrics.

Every row of the simulator's fault catalogue is switched on alone at the first target of a route (one
parametrised case each), and a few are combined. The promise under a single fault: a client never sees a
5xx while another target can answer, nothing crashes, the probe records the class provider-semantics.md §6
gives the fault, a withdrawing class withdraws the target (event + signed webhook), and the target comes
back after the fault clears.
"""

from __future__ import annotations

from typing import Any

import pytest

from adapters.sim import FAULTS, Behaviour, FaultSpec
from controlplane.domain import ErrorClass
from tests.chaos.conftest import AN, GG, OA, OB, Stack

pytestmark = pytest.mark.integration

E = ErrorClass
WITHDRAWING = {E.REGION_BLOCKED, E.MODEL_GONE, E.AUTH, E.QUOTA_EXHAUSTED}
COOLS = {"GG-429D"}  # Gemini's per-day quota: quota_exhausted with a known reset only cools (§6 "cool(daily reset)")
# Faults that act on every request only with parameters that keep the test short (real seconds on the wire).
PARAMS: dict[str, dict[str, Any]] = {
    "NET-4": {"seconds": 0.1, "interval": 0.03},
    "NET-6": {"rate": 400},
    "LATENCY": {"seconds": 0.05},
    "TTFT": {"seconds": 0.05},
}
# Faults that act before a stream's first content chunk (the others cut, stall or break it after content).
BEFORE_FIRST_CHUNK = {Behaviour.ERROR, Behaviour.REFUSED, Behaviour.HANG, Behaviour.EMPTY, Behaviour.HEALTH_LOADING}
# What the (streaming) completion probe may also see: a reset after two chunks is a cut-off body.
ALSO: dict[str, tuple[ErrorClass, ...]] = {"NET-2": (E.BAD_RESPONSE,)}
# provider for a family-specific row; its route puts that provider first
FIRST = {"openai": ("oa", "pair", OA), "anthropic": ("an", "an_first", AN), "gemini": ("gg", "gg_first", GG)}


def _routes(raw: dict[str, Any]) -> None:
    raw["routes"] += [{"name": "an_first", "targets": [AN, OB]}, {"name": "gg_first", "targets": [GG, OB]}]
    for p in raw["providers"]:  # the faulted provider is the primary of its route; ob is everyone's fallback
        if p["id"] != "ob":
            p["models"][0]["priority"] = 5


def _where(spec: FaultSpec) -> tuple[str, str, str]:
    family = "openai" if spec.families is None or "openai" in spec.families else next(iter(spec.families))
    return FIRST[family]


def _history(stack: Stack, target: str) -> list[tuple[str, object, float]]:
    """The target's events (type, reason, seconds since the stack started): what a failure message needs."""
    t0 = stack.clock.wall().timestamp() - stack.clock.monotonic()
    return [
        (e.type, e.data.get("reason"), round(e.at.timestamp() - t0, 1)) for e in stack.events() if e.subject == target
    ]


def _stream_ok(text: str) -> bool:
    return "data: [DONE]" in text or '"error"' in text


# Bedrock's and Vertex's rows need their own providers (SigV4 keys, a token endpoint): the standard stack has none.
# Each is sent and classified in tests/sim/test_cloud_catalogue.py, and the withdrawing and cooling ones run end to
# end through Turnout in tests/integration/test_clouds.py.
CLOUD_ONLY = {fid for fid, s in FAULTS.items() if s.families is not None and not s.families & set(FIRST)}


@pytest.mark.parametrize("fault", sorted(set(FAULTS) - CLOUD_ONLY))
async def test_each_catalogue_fault_alone_end_to_end(make_stack: Any, fault: str) -> None:
    spec = FAULTS[fault]
    stack: Stack = await make_stack(_routes)
    provider, route, target = _where(spec)
    await stack.step(10, by=5)  # healthy history: every target observed once
    assert stack.state(target) == "closed" and stack.table().routes[route].primary.target == target

    # CAT-1 without a model empties the whole listing, which by design withdraws nothing: drop just this model.
    stack.sim.set_fault(
        provider, fault, model=target.split("/")[1] if fault == "CAT-1" else None, **PARAMS.get(fault, {})
    )
    await stack.sim.tick()  # a refused listener closes on the simulator's tick
    # -- the client ----------------------------------------------------------------------------
    status, headers, body = await stack.chat(route)
    assert status < 500, (fault, status, body)
    if spec.expected is E.CLIENT_ERROR and spec.behaviour is Behaviour.ERROR:
        assert 400 <= status < 500 and headers.get("x-turnout-attempts") == "1", (
            fault,
            status,
            body,
        )  # never retried elsewhere
    elif (
        spec.expected is not None
        and spec.expected is not E.CLIENT_ERROR
        and spec.behaviour not in (Behaviour.MID_ERROR,)
    ):
        assert status == 200 and headers["x-turnout-target"] == OB, (
            fault,
            headers,
            body,
        )  # failed over inside the request
        m = stack.metric(
            "turnout_dataplane_attempts_total",
            {"route": route, "provider": provider, "model": target.split("/")[1], "error_class": str(spec.expected)},
        )
        assert m >= 1, (fault, spec.expected)
    else:
        assert status == 200, (fault, body)
    s_status, s_headers, text = await stack.chat(route, stream=True)
    assert s_status < 500, (fault, s_status, text)
    if s_status == 200:
        assert _stream_ok(text), (fault, text[-300:])  # a clean end, or an OpenAI-style error event: never a silent cut
    if spec.behaviour in BEFORE_FIRST_CHUNK and spec.expected not in (None, E.CLIENT_ERROR):
        # nothing reached the client yet: the stream fails over as freely as a plain request
        assert s_status == 200 and s_headers["x-turnout-target"] == OB and "data: [DONE]" in text, (
            fault,
            s_headers,
            text[-300:],
        )

    # -- probes, table, events, webhooks -------------------------------------------------------
    await stack.step(35, by=5)
    latest = stack.rt.store.latest_observations(target)
    probe_visible = spec.expected is not None and spec.behaviour is not Behaviour.CATALOGUE
    if probe_visible and fault not in (
        "POL",
    ):  # a policy refusal of the probe prompt is the caller's class: not judged
        seen = {spec.expected, *ALSO.get(fault, ())}
        assert latest["completion"].error_class in seen, (fault, latest["completion"])
    state = stack.state(target)
    if (
        (spec.expected in WITHDRAWING and fault not in COOLS)
        or spec.drops_model
        or spec.behaviour is Behaviour.CATALOGUE
    ):
        assert state == "withdrawn", (fault, state, _history(stack, target))
        assert any(e.subject == target for e in stack.events("target.withdrawn"))
        got = await stack.delivered({"target.withdrawn"})
        assert "target.withdrawn" in got, got
        assert stack.table().routes[route].primary.target == OB
    if state not in ("closed", "half_open"):
        assert stack.table().routes[route].primary.target != target
    assert (
        stack.metric("turnout_target_state", {"provider": provider, "model": target.split("/")[1], "state": state}) == 1
    )

    # -- recovery ------------------------------------------------------------------------------
    stack.sim.clear_faults()
    for _ in range(8):
        await stack.step(30, by=5)
        if stack.state(target) == "closed":
            break
    assert stack.state(target) == "closed", (fault, stack.table().targets[target], _history(stack, target))
    status, _, body = await stack.chat(route)
    assert status == 200, body
    assert not stack.rt.sink.dropped and stack.rt.sink.store_failures == 0
