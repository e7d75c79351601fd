"""The ranker: orders one route's targets from policy, breaker state and recent health.

Steps, in order:
1. Policy (config.RoutePolicy + provider tags) excludes targets; they stay in the route with `excluded_by`
   and a reason and are never admissible, not even in panic.
2. Admissible targets (closed; half_open with a small traffic share) are scored (higher is better) from
   latency p50, TTFT p50, error rate, headroom, price and priority, weighted by config.ranking.
3. Hysteresis: the previous order is kept unless a target beats the one ahead of it by `margin` (a share
   of that target's score) measured from serving evidence, so noise cannot flap the primary. Ties keep the configured route order. A primary
   that won its place by score less than `min_dwell` ago keeps it (the health model passes it as `keep_primary`;
   not a stand-in after a failover, so a recovered primary returns at once) unless it leaves admissibility: a score swing that reverses at once (a cool-down hold starting and ending,
   a burst of slow calls) cannot flip the primary there and back.
4. Panic (Envoy): when fewer than `panic_threshold` of the route's candidates are admissible, open and
   exhausted half-open targets are appended least-bad first (soonest retry, then fewest errors) instead of
   refusing everything. Withdrawn, drained and policy-excluded targets are never admitted by panic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controlplane.config import ModelConfig, ProviderConfig, RankingConfig, RouteConfig, RoutePolicy
from controlplane.domain import State
from controlplane.reasons import PANIC_SUFFIX, excluded_reason
from controlplane.table import RouteRanking, TableEntry
from controlplane.window import Figures

__all__ = ["TargetStanding", "policy_exclusion", "score", "rank_route", "entry_for", "PRICE_SCALE", "PRIORITY_STEP"]

# Price (USD per million output tokens) at which the price component is 0.5.
PRICE_SCALE = 10.0
# Score added per priority point (times weight_priority): enough to break near-ties, not to hide outages.
PRIORITY_STEP = 0.05
# Neutral component for what is not yet known (no calls in the window, no rate-limit headers).
_UNKNOWN = 0.5
# Floor for a component (all errors, no headroom): keeps the logarithm finite and the order meaningful.
_FLOOR = 0.01


@dataclass(frozen=True, slots=True)
class TargetStanding:
    """What the ranker needs to know about one target: its standing (breaker state and windowed stats, built by the
    health model). Not the data plane's `Candidate` (dataplane/selection.py), which is what a request needs to
    send to a target."""

    target: str
    provider: ProviderConfig
    model: ModelConfig
    state: State
    admissible: bool  # by breaker state alone (metrics_only keeps it true)
    reason: str
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    error_rate: float | None = None
    headroom: float | None = None
    retry_in_s: float | None = None  # open targets: seconds until half_open (panic ordering)
    figures: Figures = Figures()  # sources and sample counts of the figures above


def policy_exclusion(policy: RoutePolicy, provider: ProviderConfig, model: ModelConfig, target: str) -> str | None:
    """The first policy rule that excludes this target, written `rule: value`; None when allowed."""
    if target in policy.deny_targets:
        return f"deny_targets: {target}"
    if provider.id in policy.deny_providers:
        return f"deny_providers: {provider.id}"
    if provider.jurisdiction in policy.deny_jurisdictions:
        return f"deny_jurisdictions: {provider.jurisdiction}"
    if policy.allow_jurisdictions and provider.jurisdiction not in policy.allow_jurisdictions:
        return f"allow_jurisdictions: {provider.jurisdiction} not in {','.join(policy.allow_jurisdictions)}"
    if policy.allow_regions and provider.region not in policy.allow_regions:
        return f"allow_regions: {provider.region} not in {','.join(policy.allow_regions)}"
    if policy.require_zero_retention and not provider.zero_retention:
        return "require_zero_retention: provider retains data"
    if policy.max_price is not None and model.price.output > policy.max_price:
        return f"max_price: {model.price.output:g} > {policy.max_price:g}"
    return None


def _inv(x: float | None, scale: float = 1.0) -> float:
    """Map a non-negative cost onto (0, 1]: 0 → 1, `scale` → 0.5; unknown → neutral."""
    if x is None or not math.isfinite(x) or x < 0:
        return _UNKNOWN
    return 1.0 / (1.0 + x / scale)


def score(c: TargetStanding, w: RankingConfig) -> float:
    """Weighted geometric mean of components in (0, 1], plus a small priority bonus. Higher is better.

    Geometric rather than arithmetic: a target 10× slower, or with no headroom left, loses a real share
    of its score instead of being averaged away by its other components, so `margin` (a share of the
    score) means the same for every component."""
    err = _UNKNOWN if c.error_rate is None else 1.0 - min(max(c.error_rate, 0.0), 1.0)
    head = 1.0 if c.headroom is None else min(max(c.headroom, 0.0), 1.0)
    parts = (
        (w.weight_latency, _inv(c.latency_p50_s)),
        (w.weight_ttft, _inv(c.ttft_p50_s)),
        (w.weight_error_rate, err),
        (w.weight_headroom, head),
        (w.weight_price, _inv(c.model.price.output, PRICE_SCALE)),
    )
    total_w = sum(wt for wt, _ in parts if wt > 0)
    log_sum = sum(wt * math.log(max(v, _FLOOR)) for wt, v in parts if wt > 0)
    base = math.exp(log_sum / total_w) if total_w > 0 else 1.0
    return round(base + w.weight_priority * PRIORITY_STEP * c.model.priority, 6)


def _beats(challenger: float, incumbent: float, margin: float) -> bool:
    return challenger > incumbent + margin * abs(incumbent) + 1e-9


def _informed(c: TargetStanding) -> bool:
    """Does the score rest on serving evidence (live calls or completion probes), not only neutral guesses?"""
    cheap_only = c.figures.error_source == "cheap" and c.latency_p50_s is None and c.ttft_p50_s is None
    return not cheap_only and (c.latency_p50_s is not None or c.ttft_p50_s is not None or c.error_rate is not None)


def _sticky_order(
    names: list[str],
    scores: Mapping[str, float],
    idx: Mapping[str, int],
    previous: Sequence[str],
    margin: float,
    informed: frozenset[str] | None = None,
) -> list[str]:
    """Previous order first (for those still present), newcomers by score; then a target moves ahead of
    its neighbour only if it beats it by the margin and the neighbour's score rests on serving evidence
    (`informed`): a target not yet measured scores a neutral guess, and the first probe answer to arrive
    elsewhere would take its place, then lose it a second later when its own arrives. (A measured-bad target
    may still give way to an unmeasured one.) Deterministic for equal inputs."""
    present = set(names)
    prev = [n for n in previous if n in present]
    seen = set(prev)
    fresh = sorted((n for n in names if n not in seen), key=lambda n: (-scores[n], idx[n]))
    order = prev + fresh
    known = present if informed is None else informed
    for i in range(1, len(order)):
        j = i
        while j > 0 and order[j - 1] in known and _beats(scores[order[j]], scores[order[j - 1]], margin):
            order[j - 1], order[j] = order[j], order[j - 1]
            j -= 1
    return order


def entry_for(
    c: TargetStanding,
    *,
    admissible: bool,
    rank: int | None,
    score_: float | None,
    reason: str,
    excluded_by: str | None = None,
    half_open_share: float = 0.0,
) -> TableEntry:
    return TableEntry(
        target=c.target,
        provider=c.provider.id,
        model=c.model.name,
        state=c.state,
        admissible=admissible,
        rank=rank,
        score=score_,
        reason=reason,
        excluded_by=excluded_by,
        latency_p50_s=c.latency_p50_s,
        latency_p95_s=c.latency_p95_s,
        ttft_p50_s=c.ttft_p50_s,
        ttft_p95_s=c.ttft_p95_s,
        error_rate=c.error_rate,
        headroom=c.headroom if admissible else None,  # no capacity claim for a target that is not served
        context_window=c.model.context_window,
        adapter=c.provider.adapter,
        half_open_share=half_open_share if c.state is State.HALF_OPEN and admissible else 0.0,
        latency_source=c.figures.latency_source,
        latency_samples=c.figures.latency_samples,
        ttft_source=c.figures.ttft_source,
        ttft_samples=c.figures.ttft_samples,
        error_source=c.figures.error_source,
        error_samples=c.figures.error_samples,
    )


def rank_route(
    route: RouteConfig,
    cands: Mapping[str, TargetStanding],
    ranking: RankingConfig,
    previous_order: Sequence[str] = (),
    keep_primary: str | None = None,
) -> RouteRanking:
    """Rank one route. `previous_order` is the last published admissible order (for hysteresis);
    `keep_primary`, a primary still inside its minimum dwell, stays first while it is admissible."""
    idx = {t: i for i, t in enumerate(route.targets)}
    excluded: dict[str, str] = {}
    closed: list[str] = []
    half: list[str] = []
    pool: list[str] = []  # not excluded, not drained: the panic threshold's denominator
    for t in route.targets:
        c = cands.get(t)
        if c is None:
            continue
        why = policy_exclusion(route.policy, c.provider, c.model, t)
        if why is not None:
            excluded[t] = why
            continue
        if c.state is not State.DRAINED:
            pool.append(t)
        if c.admissible:
            (half if c.state is State.HALF_OPEN else closed).append(t)
    scores = {t: score(cands[t], ranking) for t in closed + half}
    # closed targets always rank ahead of half_open ones (those only get a trial share)
    informed = frozenset(t for t in closed + half if _informed(cands[t]))
    closed_order = _sticky_order(closed, scores, idx, previous_order, ranking.margin, informed)
    half_order = _sticky_order(half, scores, idx, previous_order, ranking.margin, informed)
    for part in (closed_order, half_order):
        if keep_primary in part and (part is closed_order or not closed_order):
            part.remove(keep_primary)
            part.insert(0, keep_primary)
    order = closed_order + half_order
    panic = bool(pool) and len(order) / len(pool) < route.panic_threshold
    least_bad: list[str] = []
    if panic:
        rest = [t for t in pool if t not in scores and cands[t].state in (State.OPEN, State.HALF_OPEN)]

        def badness(t: str) -> tuple[float, float, int]:
            c = cands[t]
            retry = c.retry_in_s if c.retry_in_s is not None else 0.0
            return (max(retry, 0.0), c.error_rate if c.error_rate is not None else 1.0, idx[t])

        least_bad = sorted(rest, key=badness)
        for t in least_bad:
            scores[t] = score(cands[t], ranking)
    entries: list[TableEntry] = []
    rank = 0
    for t in order:
        rank += 1
        c = cands[t]
        entries.append(
            entry_for(
                c,
                admissible=True,
                rank=rank,
                score_=scores[t],
                reason=c.reason,
                half_open_share=ranking.half_open_share,
            )
        )
    for t in least_bad:
        rank += 1
        c = cands[t]
        entries.append(
            entry_for(
                c,
                admissible=True,
                rank=rank,
                score_=scores[t],
                reason=c.reason + PANIC_SUFFIX,
                half_open_share=ranking.half_open_share,
            )
        )
    placed = set(order) | set(least_bad)
    for t in route.targets:
        c = cands.get(t)
        if c is None or t in placed:
            continue
        why = excluded.get(t)
        entries.append(
            entry_for(
                c,
                admissible=False,
                rank=None,
                score_=None,
                reason=excluded_reason(why) if why else c.reason,
                excluded_by=why,
            )
        )
    return RouteRanking(route=route.name, entries=tuple(entries), panic=panic)
