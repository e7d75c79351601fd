"""`turnout init`: the starter config it writes passes `turnout config check` once the variables it lists are set,
and its provider entries are the ones examples/turnout.yaml documents."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.cli import main
from controlplane.config_loader import load_config
from controlplane.errors import ConfigError, ConfigProblems
from controlplane.starter import ALIASES, STARTERS, env_vars

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "turnout.yaml"
COMBOS = [[name] for name in STARTERS] + [
    ["openai", "anthropic", "gemini"],
    ["openai", "anthropic", "bedrock"],
    list(STARTERS),
]


def _printed_vars(out: str) -> list[str]:
    return [line.split()[1].split("=")[0] for line in out.splitlines() if line.strip().startswith("export ")]


@pytest.mark.parametrize("providers", COMBOS, ids=lambda c: ",".join(c))
def test_init_output_passes_config_check_once_its_variables_are_set(
    providers: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "turnout.yaml"
    assert main(["init", "-o", str(path), "--providers", ",".join(providers)]) == 0
    needed = _printed_vars(capsys.readouterr().out)
    assert needed == env_vars(providers) and "TURNOUT_ADMIN_TOKEN" in needed

    if len(needed) > 1:  # without them: every variable named at once, nothing else wrong
        with pytest.raises(ConfigProblems) as err:
            load_config(path, env={})
        assert [p.problem for p in err.value.problems] == [f"environment variable {v} is not set" for v in needed]

    for name in needed:
        monkeypatch.setenv(name, f"test-{name.lower()}")
    assert main(["config", "check", str(path)]) == 0
    cfg = load_config(path)
    assert [p.id for p in cfg.providers] == _ids(providers)
    route = cfg.route("default")
    assert route is not None and route.targets == [f"{p.id}/{p.models[0].name}" for p in cfg.providers]


def _ids(providers: list[str]) -> list[str]:
    return [ALIASES.get(p, p) for p in providers]


def test_init_lists_the_variables_in_the_file_header(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    assert main(["init", "-o", str(path), "--providers", "anthropic,deepseek"]) == 0
    head = path.read_text().split("server:")[0]
    for name in ("TURNOUT_ADMIN_TOKEN", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY"):
        assert f"export {name}=" in head


def test_init_does_not_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "turnout.yaml"
    path.write_text("mine\n")
    assert main(["init", "-o", str(path)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and path.read_text() == "mine\n"
    assert main(["init", "-o", str(path), "--force"]) == 0
    assert "providers:" in path.read_text()


def test_init_refuses_an_unknown_provider_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "-o", str(tmp_path / "t.yaml"), "--providers", "openai,acme"]) == 2
    err = capsys.readouterr().err
    assert "no starter for provider 'acme'" in err and "openai" in err and "anthropic" in err
    assert not (tmp_path / "t.yaml").exists()


def test_starters_match_the_documented_example() -> None:
    """One set of exact model ids: a starter differing from examples/turnout.yaml means one of them is stale."""
    documented = {p["id"]: p for p in yaml.safe_load(EXAMPLE.read_text())["providers"]}
    for s in STARTERS.values():
        p = documented[s.id]
        assert (p["adapter"], p.get("base_url"), p.get("flavor")) == (s.adapter, s.base_url, s.flavor), s.id
        assert [m["name"] for m in p["models"]] == [m.name for m in s.models], s.id


def test_the_default_is_a_valid_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "turnout.yaml"
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    with pytest.raises(ConfigError):  # the variables are not set in the test environment
        load_config(path, env={})
    env = {v: "test-value" for v in env_vars(["openai", "anthropic"])}
    assert {p.id for p in load_config(path, env=env).providers} == {"openai", "anthropic"}
