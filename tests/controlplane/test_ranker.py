"""Ranker: policy first, scores, hysteresis, deterministic ties, panic."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.config import Config, RouteConfig
from controlplane.config_loader import parse_config
from controlplane.domain import State
from controlplane.ranker import TargetStanding, policy_exclusion, rank_route, score
from controlplane.reasons import PANIC_SUFFIX

CFG = parse_config(
    """
providers:
  - {id: us1, adapter: openai, base_url: "http://us1", region: us, jurisdiction: us, zero_retention: true,
     models: [{name: m, price: {output: 10}}]}
  - {id: eu1, adapter: anthropic, base_url: "http://eu1", region: eu, jurisdiction: eu, zero_retention: true,
     models: [{name: m, price: {output: 10}, context_window: 200000}]}
  - {id: cn1, adapter: openai, base_url: "http://cn1", region: cn, jurisdiction: cn,
     models: [{name: m, price: {output: 1}}]}
  - {id: us2, adapter: openai, base_url: "http://us2", region: us, jurisdiction: us,
     models: [{name: m, price: {output: 10}}, {name: big, price: {output: 60}, priority: 5}]}
routes:
  - {name: r, targets: [us1/m, eu1/m, cn1/m, us2/m]}
"""
)
W = CFG.ranking


def cand(t: str, cfg: Config = CFG, **kw: Any) -> TargetStanding:
    p = cfg.provider(t.split("/")[0])
    assert p is not None
    m = p.model(t.split("/")[1])
    assert m is not None
    kw.setdefault("state", State.CLOSED)
    kw.setdefault("admissible", kw["state"] in (State.CLOSED, State.HALF_OPEN))
    kw.setdefault("reason", str(kw["state"]))
    return TargetStanding(target=t, provider=p, model=m, **kw)


def route(**kw: Any) -> RouteConfig:
    base = CFG.routes[0].model_dump(by_alias=True)
    base.update(kw)
    return RouteConfig.model_validate(base)


def cands(*items: TargetStanding) -> dict[str, TargetStanding]:
    return {c.target: c for c in items}


ALL = ("us1/m", "eu1/m", "cn1/m", "us2/m")


def healthy(**lat: float) -> dict[str, TargetStanding]:
    return cands(*(cand(t, latency_p50_s=lat.get(t.split("/")[0], 0.5), ttft_p50_s=0.2, error_rate=0.0) for t in ALL))


@pytest.mark.parametrize(
    ("policy", "target", "expected"),
    [
        ({"deny_jurisdictions": ["cn"]}, "cn1/m", "deny_jurisdictions: cn"),
        ({"allow_regions": ["us", "eu"]}, "cn1/m", "allow_regions: cn not in us,eu"),
        ({"allow_jurisdictions": ["eu"]}, "us1/m", "allow_jurisdictions: us not in eu"),
        ({"deny_providers": ["us2"]}, "us2/m", "deny_providers: us2"),
        ({"deny_targets": ["eu1/m"]}, "eu1/m", "deny_targets: eu1/m"),
        ({"require_zero_retention": True}, "us2/m", "require_zero_retention: provider retains data"),
        ({"max_price": 5}, "us1/m", "max_price: 10 > 5"),
    ],
)
def test_policy_excludes_with_a_named_rule(policy: dict[str, Any], target: str, expected: str) -> None:
    r = route(policy=policy)
    c = cand(target)
    assert policy_exclusion(r.policy, c.provider, c.model, target) == expected
    ranking = rank_route(r, healthy(), W)
    entry = next(e for e in ranking.entries if e.target == target)
    assert entry.excluded_by == expected
    assert not entry.admissible and entry.rank is None
    assert entry.reason == "excluded: " + expected.replace(": ", " ", 1)


def test_excluded_targets_stay_in_the_route_after_the_admissible_ones() -> None:
    ranking = rank_route(route(policy={"deny_jurisdictions": ["cn"]}), healthy(), W)
    assert [e.target for e in ranking.entries][-1] == "cn1/m"
    assert len(ranking.entries) == 4
    assert "deny_jurisdictions cn" in ranking.entries[-1].reason


def test_lower_latency_lower_errors_and_lower_price_score_higher() -> None:
    base = cand("us1/m", latency_p50_s=0.5, ttft_p50_s=0.2, error_rate=0.0, headroom=1.0)
    assert score(base, W) > score(cand("us1/m", latency_p50_s=2.0, ttft_p50_s=0.2, error_rate=0.0, headroom=1.0), W)
    assert score(base, W) > score(cand("us1/m", latency_p50_s=0.5, ttft_p50_s=0.2, error_rate=0.3, headroom=1.0), W)
    assert score(base, W) > score(cand("us1/m", latency_p50_s=0.5, ttft_p50_s=0.2, error_rate=0.0, headroom=0.0), W)
    assert score(cand("cn1/m", latency_p50_s=0.5, ttft_p50_s=0.2, error_rate=0.0), W) > score(
        cand("us1/m", latency_p50_s=0.5, ttft_p50_s=0.2, error_rate=0.0), W
    )
    big = cand("us2/big")
    no_priority = TargetStanding(
        target=big.target,
        provider=big.provider,
        model=big.model.model_copy(update={"priority": 0}),
        state=State.CLOSED,
        admissible=True,
        reason="",
    )
    assert score(big, W) == pytest.approx(score(no_priority, W) + 5 * 0.05 * W.weight_priority)


def test_ties_keep_the_configured_route_order() -> None:
    ranking = rank_route(route(targets=["us1/m", "eu1/m", "us2/m"]), healthy(), W)
    assert [e.target for e in ranking.entries] == ["us1/m", "eu1/m", "us2/m"]
    assert [e.rank for e in ranking.entries] == [1, 2, 3]


def test_a_challenger_must_beat_the_primary_by_the_margin() -> None:
    r = route(targets=["us1/m", "eu1/m"])
    first = rank_route(r, healthy(us1=0.5, eu1=0.5), W)
    prev = [e.target for e in first.entries if e.admissible]
    slightly = rank_route(r, healthy(us1=0.6, eu1=0.5), W, prev)
    assert slightly.primary is not None and slightly.primary.target == "us1/m"
    much = rank_route(r, healthy(us1=8.0, eu1=0.3), W, prev)
    assert much.primary is not None and much.primary.target == "eu1/m"


def test_without_history_the_best_score_leads() -> None:
    ranking = rank_route(route(targets=["us1/m", "eu1/m"]), healthy(us1=3.0, eu1=0.4), W)
    assert ranking.primary is not None and ranking.primary.target == "eu1/m"


def test_half_open_ranks_after_closed_with_its_share() -> None:
    cs = healthy()
    cs["us1/m"] = cand("us1/m", state=State.HALF_OPEN, latency_p50_s=0.01)
    ranking = rank_route(route(), cs, W)
    ho = next(e for e in ranking.entries if e.target == "us1/m")
    assert ho.admissible and ho.rank == 4 and ho.half_open_share == W.half_open_share
    assert ranking.primary is not None and ranking.primary.half_open_share == 0.0


def test_panic_admits_least_bad_open_targets_soonest_retry_first() -> None:
    cs = cands(
        cand("us1/m", state=State.OPEN, retry_in_s=20.0, error_rate=1.0),
        cand("eu1/m", state=State.OPEN, retry_in_s=5.0, error_rate=1.0),
        cand("cn1/m"),
        cand("us2/m", state=State.OPEN, retry_in_s=5.0, error_rate=0.5),
    )
    ranking = rank_route(route(panic_threshold=0.5), cs, W)
    assert ranking.panic
    assert [e.target for e in ranking.entries] == ["cn1/m", "us2/m", "eu1/m", "us1/m"]
    assert all(e.admissible for e in ranking.entries)
    assert ranking.entries[1].reason.endswith(PANIC_SUFFIX)


def test_panic_never_admits_withdrawn_drained_or_excluded_targets() -> None:
    cs = cands(
        cand("us1/m", state=State.WITHDRAWN),
        cand("eu1/m", state=State.DRAINED),
        cand("cn1/m", state=State.OPEN, retry_in_s=1.0),
        cand("us2/m", state=State.OPEN, retry_in_s=1.0),
    )
    ranking = rank_route(route(policy={"deny_jurisdictions": ["cn"]}), cs, W)
    assert ranking.panic
    adm = {e.target for e in ranking.entries if e.admissible}
    assert adm == {"us2/m"}


def test_a_route_with_enough_admissible_targets_is_not_in_panic() -> None:
    cs = healthy()
    cs["us1/m"] = cand("us1/m", state=State.OPEN, retry_in_s=5.0)
    cs["eu1/m"] = cand("eu1/m", state=State.OPEN, retry_in_s=5.0)
    ranking = rank_route(route(panic_threshold=0.5), cs, W)
    assert not ranking.panic  # 2 of 4: not fewer than half
    assert [e.target for e in ranking.entries if e.admissible] == ["cn1/m", "us2/m"]


def test_everything_withdrawn_means_no_primary() -> None:
    cs = cands(*(cand(t, state=State.WITHDRAWN) for t in ALL))
    ranking = rank_route(route(), cs, W)
    assert ranking.primary is None and ranking.panic


def test_entries_carry_table_fields() -> None:
    cs = healthy()
    ranking = rank_route(route(targets=["eu1/m"]), cs, W)
    e = ranking.entries[0]
    assert (e.provider, e.model, e.adapter, e.context_window) == ("eu1", "m", "anthropic", 200000)
    assert e.score is not None and e.latency_p50_s == 0.5
