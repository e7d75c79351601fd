"""Choosing a panel (table order, provider diversity, replacements) and filling the prompt templates."""

from __future__ import annotations

import pytest

from controlplane.config import ProviderConfig
from dataplane.panel.members import choose_members
from dataplane.panel.prompts import (
    DEFAULT_JUDGE_TEMPLATE,
    DEFAULT_SYNTHESIZER_TEMPLATE,
    TemplateError,
    check_template,
    numbered_answers,
    render,
    transcript,
)
from dataplane.panel.trail import Call, sum_usage
from dataplane.selection import Candidate, Plan


def _cand(target: str) -> Candidate:
    pid, _, model = target.partition("/")
    provider = ProviderConfig.model_validate(
        {"id": pid, "adapter": "openai", "base_url": "http://127.0.0.1:9", "models": [{"name": model}]}
    )
    return Candidate(target=target, provider=provider, model=model, adapter="openai")


def _plan(*targets: str) -> Plan:
    return Plan("r", [_cand(t) for t in targets])


def _keys(cands: list[Candidate]) -> list[str]:
    return [c.target for c in cands]


def test_members_follow_table_order_one_per_provider_and_the_rest_are_replacements_in_order() -> None:
    chosen, pool = choose_members([_plan("a/x", "a/y", "b/x"), _plan("c/x", "b/y", "d/x")], 3, True)
    assert _keys(chosen) == ["a/x", "b/x", "c/x"]
    assert _keys(pool) == ["a/y", "b/y", "d/x"]


def test_a_target_named_by_two_sources_is_counted_once() -> None:
    chosen, pool = choose_members([_plan("a/x", "b/x"), _plan("b/x", "c/x")], 3, True)
    assert _keys(chosen) == ["a/x", "b/x", "c/x"] and pool == []


def test_without_diversity_the_first_targets_in_table_order_are_chosen() -> None:
    chosen, pool = choose_members([_plan("a/x", "a/y", "b/x")], 2, False)
    assert _keys(chosen) == ["a/x", "a/y"] and _keys(pool) == ["b/x"]


def test_diversity_is_strict_when_too_few_providers_are_admissible() -> None:
    chosen, pool = choose_members([_plan("a/x", "a/y")], 3, True)
    assert _keys(chosen) == ["a/x"] and _keys(pool) == ["a/y"]


def test_usage_sums_every_call() -> None:
    calls = [
        Call("member", "a/x", "ok", tokens_in=10, tokens_out=3),
        Call("member", "b/x", "timeout"),
        Call("judge", "j/x", "ok", tokens_in=40, tokens_out=7),
        Call("synthesizer", "s/x", "ok", tokens_in=55, tokens_out=9),
    ]
    assert sum_usage(calls) == {"prompt_tokens": 105, "completion_tokens": 19, "total_tokens": 124}


def test_render_fills_known_placeholders_once_and_leaves_other_braces() -> None:
    out = render("Q={question} A={answers} {unknown} {{x}}", {"question": "say {answers}", "answers": '{"json": 1}'})
    assert out == 'Q=say {answers} A={"json": 1} {unknown} {{x}}'


def test_default_templates_are_valid_and_carry_the_panel_work() -> None:
    check_template(DEFAULT_JUDGE_TEMPLATE, "judge")
    check_template(DEFAULT_SYNTHESIZER_TEMPLATE, "synth", ("answers", "analysis"))
    filled = render(DEFAULT_SYNTHESIZER_TEMPLATE, {"question": "Q?", "answers": "A1", "analysis": "AN", "count": "2"})
    assert "Q?" in filled and "A1" in filled and "AN" in filled and "{" not in filled


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("no answers here", "must contain {answers}"),
        ("{answers} and {answer}", "unknown placeholder {answer}"),
    ],
)
def test_a_bad_template_names_its_field_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(TemplateError) as exc:
        check_template(text, "routes.fusion.panel.judge_template")
    assert str(exc.value).startswith("routes.fusion.panel.judge_template: ") and problem in str(exc.value)


def test_transcript_keeps_roles_and_text_parts() -> None:
    assert transcript([{"role": "user", "content": "hi"}]) == "hi"
    msgs = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}}],
        },
    ]
    assert transcript(msgs) == "system: be brief\n\nuser: look\n[image_url]"


def test_answers_are_numbered_and_anonymous() -> None:
    assert numbered_answers([" one ", "two"]) == '<answer n="1">\none\n</answer>\n\n<answer n="2">\ntwo\n</answer>'


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("judge this", "must contain {answers}"),
        ("{answers} {answer}", "unknown placeholder {answer}"),
    ],
)
def test_config_rejects_a_panel_template_naming_the_field(template: str, problem: str) -> None:
    from controlplane.config_loader import parse_config
    from controlplane.errors import ConfigError

    text = f"""
providers:
  - {{id: a, adapter: openai, base_url: "http://127.0.0.1:9", models: [{{name: x}}]}}
routes:
  - {{name: r, targets: [a/x]}}
  - {{name: p, mode: panel, panel: {{from: [r], size: 1, quorum: 1, judge_template: "{template}"}}}}
"""
    with pytest.raises(ConfigError) as exc:
        parse_config(text, source="turnout.yaml", env={})
    assert exc.value.field == "routes.p.panel.judge_template"
    assert problem in exc.value.problem
