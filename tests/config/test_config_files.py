"""Config files: one small file per mistake mapped to its message, and the committed examples load."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from controlplane.cli import main
from controlplane.config import PROBE_KINDS_KNOWN
from controlplane.config_loader import load_config, parse_config
from controlplane.errors import ConfigError, ConfigProblems

BAD = Path(__file__).parent / "bad"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# file → (dotted field, words the message must contain)
EXPECTED: dict[str, tuple[str, str]] = {
    "unknown_adapter.yaml": ("providers.acme.adapter", "unknown adapter 'acmeai'; known: openai, anthropic, gemini"),
    "route_unknown_target.yaml": ("routes.frontier.targets[1]", "unknown target 'acme/x'; known: acme/m1"),
    "missing_env.yaml": ("providers.acme.api_key", "environment variable TURNOUT_TEST_MISSING_KEY is not set"),
    "bad_duration.yaml": ("probes.interval", "bad duration '15 seconds'; use e.g. '500ms', '15s'"),
    "unknown_field.yaml": ("probes.intervall", "unknown field 'intervall'"),
    "duplicate_provider.yaml": ("providers[1].id", "duplicate provider id 'acme'"),
    "duplicate_model.yaml": ("providers.acme.models[1].name", "duplicate model 'm1'"),
    "duplicate_route.yaml": ("routes[1].name", "duplicate route name 'r'"),
    "bad_yaml.yaml": ("line 4, column 14", "not valid YAML"),
    "empty.yaml": ("", "the file is empty"),
    "top_level_list.yaml": ("", "the top level must be a mapping"),
    "unknown_probe_kind.yaml": ("probes.kinds", "unknown probe kind 'smoke_signal'"),
    "bad_base_url.yaml": ("providers.acme.base_url", "base_url must be an http(s) URL"),
    "half_open_inconsistent.yaml": ("breaker", "half_open_successes must not exceed half_open_trials"),
    "no_providers.yaml": ("providers", "Field required"),
    "negative_price.yaml": ("providers.acme.models[0].price.input", "greater than or equal to 0"),
    "bad_database_url.yaml": ("database.url", "unsupported database url 'mysql://db/turnout'"),
    "bad_webhook_network.yaml": ("webhooks.allow_private_networks", "not a network: 'localhost'"),
    "jitter_out_of_range.yaml": ("probes.jitter", "less than or equal to 1"),
    "route_without_targets.yaml": ("routes.r.targets", "a failover route needs at least one target"),
    "bad_port.yaml": ("server.control.port", "less than or equal to 65535"),
}


def test_every_bad_file_has_an_expected_message() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_config_is_refused_with_a_clear_message(name: str) -> None:
    field, words = EXPECTED[name]
    with pytest.raises(ConfigError) as err:
        load_config(BAD / name, env={})
    assert err.value.field == field
    assert words in err.value.problem
    assert str(err.value).startswith(f"{BAD / name}: ")  # names the file


def test_config_check_exits_2_on_a_bad_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(BAD / "unknown_adapter.yaml")]) == 2
    assert "unknown adapter 'acmeai'" in capsys.readouterr().err


def test_secrets_are_not_printed_in_errors_or_dumps() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            "providers: [{id: a, adapter: openai, base_url: 'https://x', api_key: '${K}', models: [{name: m}]}]\n"
            "routes: [{name: r, targets: [a/zz]}]",
            env={"K": "sk-very-secret"},
        )
    assert "sk-very-secret" not in str(err.value)
    good = parse_config(
        "providers: [{id: a, adapter: openai, base_url: 'https://x', api_key: '${K}', models: [{name: m}]}]",
        env={"K": "sk-very-secret"},
    )
    assert "sk-very-secret" not in repr(good) and "sk-very-secret" not in good.model_dump_json()


def _turnout_configs() -> list[Path]:
    """examples/*.yaml that are Turnout configs (the simulator's own sim.yaml is not)."""
    out = []
    for p in sorted(EXAMPLES.glob("*.yaml")):
        raw = yaml.safe_load(p.read_text())
        if isinstance(raw, dict) and all("adapter" in prov for prov in raw.get("providers", [])):
            out.append(p)
    return out


def _env_for(path: Path) -> dict[str, str]:
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", path.read_text()))
    return {**os.environ, **{n: f"test-{n.lower()}" for n in names}}


def test_examples_include_the_real_provider_config() -> None:
    assert EXAMPLES / "turnout.yaml" in _turnout_configs()


@pytest.mark.parametrize("path", _turnout_configs(), ids=lambda p: p.name)
def test_committed_examples_load(path: Path) -> None:
    cfg = load_config(path, env=_env_for(path))
    assert cfg.providers and cfg.hash
    for kind in cfg.probes.kinds:
        assert kind in PROBE_KINDS_KNOWN


def test_real_provider_example_covers_the_major_providers() -> None:
    cfg = load_config(EXAMPLES / "turnout.yaml", env=_env_for(EXAMPLES / "turnout.yaml"))
    ids = {p.id for p in cfg.providers}
    assert {"openai", "anthropic", "google", "deepseek", "mistral", "openrouter"} <= ids
    assert any(p.flavor in ("vllm", "ollama") for p in cfg.providers)
    assert all(p.api_key is None or p.base_url.startswith("https://") for p in cfg.providers if p.region != "local")
    assert cfg.model_of("openrouter/anthropic/claude-sonnet-4") is not None  # model names may contain '/'


def test_the_config_hash_changes_with_content_only() -> None:
    text = "providers: [{id: a, adapter: openai, base_url: 'https://x', models: [{name: m}]}]"
    assert parse_config(text, env={}).hash == parse_config(text + "\n# comment", env={}).hash
    assert parse_config(text, env={}).hash != parse_config(text.replace("'https://x'", "'https://y'"), env={}).hash


def test_every_unset_variable_is_reported_in_one_run() -> None:
    path = EXAMPLES / "turnout.yaml"
    names = sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", re.sub(r"#.*", "", path.read_text()))))
    with pytest.raises(ConfigProblems) as err:
        load_config(path, env={})
    reported = [p.problem for p in err.value.problems]
    assert sorted(reported) == sorted(f"environment variable {n} is not set" for n in names)
    assert len(names) >= 7  # one per provider key and the admin token
    assert all(f"environment variable {n} is not set" in str(err.value) for n in names)
    assert err.value.field == "auth.tokens[0].token"  # the first problem in file order, for one-field callers


def test_every_unknown_target_and_unset_variable_is_reported_together() -> None:
    text = (
        "providers: [{id: a, adapter: openai, base_url: 'https://x', api_key: '${KEY_A}', models: [{name: m}]},\n"
        "            {id: b, adapter: openai, base_url: '${B_URL}', models: [{name: m}]}]\n"
        "routes: [{name: r, targets: [a/m, a/typo, c/m]}, {name: s, targets: [b/nope]}]\n"
    )
    with pytest.raises(ConfigProblems) as err:
        parse_config(text, source="t.yaml", env={})
    got = [(p.field, p.problem.split(";")[0]) for p in err.value.problems]
    assert got == [
        ("providers.a.api_key", "environment variable KEY_A is not set"),
        ("providers.b.base_url", "environment variable B_URL is not set"),  # its emptied URL is not a 2nd problem
        ("routes.r.targets[1]", "unknown target 'a/typo'"),
        ("routes.r.targets[2]", "unknown target 'c/m'"),
        ("routes.s.targets[0]", "unknown target 'b/nope'"),
    ]
    assert str(err.value).startswith("t.yaml: 5 problems:\n  providers.a.api_key: ")


def test_config_check_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(
        "providers: [{id: a, adapter: acmeai, base_url: 'https://x', models: [{name: m}]}]\n"
        "probes: {interval: '15 seconds', intervall: 3}\n"
    )
    assert main(["config", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err
    assert (
        "unknown adapter 'acmeai'" in err and "bad duration '15 seconds'" in err and "unknown field 'intervall'" in err
    )
