from __future__ import annotations

from controlplane.domain import State
from controlplane.table import RouteRanking
from dataplane.preferences import Preferences
from dataplane.selection import Selector
from tests.dataplane.helpers import entry, make_table, parse

CONFIG = """
providers:
  - {id: a, adapter: openai, base_url: "http://127.0.0.1:1", jurisdiction: us, zero_retention: true,
     models: [{name: m1, context_window: 8000, price: {input: 1, output: 2}}]}
  - {id: b, adapter: openai, base_url: "http://127.0.0.1:2", jurisdiction: cn,
     models: [{name: m1, context_window: 32000, price: {input: 1, output: 9}}]}
  - {id: c, adapter: anthropic, base_url: "http://127.0.0.1:3", jurisdiction: us, zero_retention: true,
     models: [{name: m2, context_window: 200000, price: {input: 3, output: 15}}]}
routes:
  - {name: main, targets: [a/m1, b/m1, c/m2], spill_headroom: 0.1}
"""


def order(plan: object) -> list[str]:
    return [c.target for c in plan.candidates]  # type: ignore[attr-defined]


def test_admissible_targets_in_rank_order_with_skip_reasons() -> None:
    cfg = parse(CONFIG)
    table = make_table(cfg, overrides={"b/m1": entry("b/m1", State.WITHDRAWN)})
    plan = Selector(cfg).plan(table, "main")
    assert plan is not None
    assert order(plan) == ["a/m1", "c/m2"]
    assert plan.skipped[0][0] == "b/m1" and "withdrawn" in plan.skipped[0][1]
    assert plan.table_version == 1


def test_unknown_model_gives_none_and_explicit_target_is_a_single_candidate() -> None:
    cfg = parse(CONFIG)
    sel = Selector(cfg)
    table = make_table(cfg)
    assert sel.plan(table, "nope") is None
    plan = sel.plan(table, "c/m2")
    assert plan is not None and plan.explicit and order(plan) == ["c/m2"]


def test_explicit_target_that_is_open_is_not_sent_traffic() -> None:
    cfg = parse(CONFIG)
    table = make_table(cfg, overrides={"a/m1": entry("a/m1", State.OPEN)})
    plan = Selector(cfg).plan(table, "a/m1")
    assert plan is not None and plan.candidates == [] and plan.skipped[0][0] == "a/m1"


def test_low_headroom_primary_spills_to_the_next_and_stays_a_fallback() -> None:
    cfg = parse(CONFIG)
    table = make_table(cfg, overrides={"a/m1": entry("a/m1", headroom=0.02)})
    plan = Selector(cfg).plan(table, "main")
    assert plan is not None and order(plan) == ["b/m1", "a/m1", "c/m2"]
    assert any("spill" in r for _, r in plan.skipped)


def test_half_open_target_gets_only_its_share_otherwise_last_resort() -> None:
    cfg = parse(CONFIG)
    table = make_table(cfg, overrides={"a/m1": entry("a/m1", State.HALF_OPEN, half_open_share=0.1)})
    inside = Selector(cfg, rand=lambda: 0.05).plan(table, "main")
    outside = Selector(cfg, rand=lambda: 0.5).plan(table, "main")
    assert inside is not None and order(inside) == ["a/m1", "b/m1", "c/m2"]
    assert outside is not None and order(outside) == ["b/m1", "c/m2", "a/m1"]


def test_a_half_open_target_ranked_behind_the_closed_ones_is_tried_first_within_its_share() -> None:
    """The ranker puts a half_open target after every closed one: inside its trial share the request tries it
    first (live traffic takes the trials), outside it stays a last resort; one trial per request."""
    cfg = parse(CONFIG)
    half = {t: entry(t, State.HALF_OPEN, half_open_share=0.1) for t in ("a/m1", "b/m1")}
    table = make_table(cfg, overrides=half)
    ranked = table.routes["main"]
    by_target = {e.target: e for e in ranked.entries}
    table.routes["main"] = RouteRanking("main", tuple(by_target[t] for t in ("c/m2", "a/m1", "b/m1")))
    inside = Selector(cfg, rand=lambda: 0.05).plan(table, "main")
    outside = Selector(cfg, rand=lambda: 0.5).plan(table, "main")
    assert inside is not None and order(inside) == ["a/m1", "c/m2", "b/m1"]
    assert [t for t, _ in inside.skipped] == ["b/m1"]  # drawn too, but the request already has its trial
    assert outside is not None and order(outside) == ["c/m2", "a/m1", "b/m1"]


def test_preferences_filter_and_reorder() -> None:
    cfg = parse(CONFIG)
    sel = Selector(cfg)
    table = make_table(cfg)
    p = sel.plan(table, "main", Preferences(deny_jurisdictions=frozenset({"cn"})))
    assert p is not None and order(p) == ["a/m1", "c/m2"]
    p = sel.plan(table, "main", Preferences(require_zero_retention=True, max_price=10))
    assert p is not None and order(p) == ["a/m1"]
    p = sel.plan(table, "main", Preferences(order=("c", "b/m1")))
    assert p is not None and order(p) == ["c/m2", "b/m1", "a/m1"]
    p = sel.plan(table, "main", Preferences(order=("c",), allow_fallbacks=False))
    assert p is not None and order(p) == ["c/m2"]
    p = sel.plan(table, "main", Preferences(allow_fallbacks=False))
    assert p is not None and order(p) == ["a/m1"]


def test_per_version_work_is_reused_until_the_table_changes() -> None:
    cfg = parse(CONFIG)
    sel = Selector(cfg)
    t1 = make_table(cfg, 1)
    first = sel.plan(t1, "main")
    again = sel.plan(t1, "main")
    assert first is not None and again is not None and first.candidates[0] is again.candidates[0]
    t2 = make_table(cfg, 2, overrides={"a/m1": entry("a/m1", State.OPEN)})
    later = sel.plan(t2, "main")
    assert later is not None and order(later) == ["b/m1", "c/m2"] and later.table_version == 2
