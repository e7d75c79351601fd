"""sim.yaml and the examples: they load, agree with each other, and bad input names the field; the Turnout
config the simulator builds for other tests validates and works end to end with the real adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

import adapters.sim
from adapters.registry import get_adapter
from adapters.sim import Simulator, load_sim_config, parse_sim_config
from controlplane.config import Config, ProviderConfig
from controlplane.config_loader import load_config
from controlplane.domain import ErrorClass
from controlplane.errors import ConfigError
from tests.fakes import FakeClock
from tests.sim.conftest import SIM_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def test_public_names_are_exported() -> None:
    assert sorted(adapters.sim.__all__) == sorted(n for n in adapters.sim.__all__ if hasattr(adapters.sim, n))
    assert {"Simulator", "FAULTS", "ALIASES", "load_sim_config"} <= set(adapters.sim.__all__)


def test_example_sim_yaml_has_the_five_demo_providers() -> None:
    cfg = load_sim_config(ROOT / "examples" / "sim.yaml")
    flavors = {p.id: p.effective_flavor for p in cfg.providers}
    assert flavors == {
        "sim-openai": "openai",
        "sim-anthropic": "anthropic",
        "sim-gemini": "gemini",
        "sim-deepseek": "deepseek",
        "sim-vllm": "vllm",
    }
    assert all(18700 <= p.port < 18800 for p in cfg.providers) and 18700 <= cfg.admin_port < 18800
    assert cfg.timeline


def test_example_turnout_config_points_at_the_example_simulator() -> None:
    sim_cfg = load_sim_config(ROOT / "examples" / "sim.yaml")
    cfg = load_config(ROOT / "examples" / "turnout-sim.yaml", env={})
    base = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta"}
    for p in sim_cfg.providers:
        tp = cfg.provider(p.id)
        assert tp is not None and tp.adapter == p.family
        assert tp.base_url == f"http://127.0.0.1:{p.port}{base[p.family]}"
        assert [m.name for m in tp.models] == [m.name for m in p.models]
        assert (tp.api_key.get_secret_value() if tp.api_key else None) == p.api_key
    assert {r.name for r in cfg.routes} >= {"frontier", "cheap-fast"}


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        ({"providers": []}, "providers", "at least 1"),
        ({"providers": [{"id": "a", "family": "cohere", "models": [{"name": "m"}]}]}, "providers.0.family", "openai"),
        (
            {"providers": [{"id": "a", "family": "openai", "models": [{"name": "m"}]}] * 2},
            "providers",
            "duplicate provider id 'a'",
        ),
        (
            {"providers": [{"id": "a", "family": "openai", "modles": []}]},
            "providers.0.modles",
            "unknown field 'modles'",
        ),
        (
            {"providers": [{"id": "a", "family": "openai", "models": [{"name": "m"}], "latency": "fast"}]},
            "providers.0.latency",
            "bad duration",
        ),
        (
            {
                "providers": [{"id": "a", "family": "openai", "models": [{"name": "m"}]}],
                "timeline": [{"at": "1s", "provider": "b", "fault": "auth"}],
            },
            "",
            "timeline[0]: unknown provider 'b'",
        ),
        (
            {
                "providers": [{"id": "a", "family": "openai", "models": [{"name": "m"}]}],
                "timeline": [{"at": "1s", "provider": "a", "fault": "AN-529"}],
            },
            "",
            "anthropic family",
        ),
        (
            {
                "providers": [{"id": "a", "family": "openai", "models": [{"name": "m"}]}],
                "timeline": [{"at": "1s", "provider": "a"}],
            },
            "timeline.0",
            "needs `fault: NAME`",
        ),
    ],
)
def test_bad_sim_config_names_the_field(raw: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_sim_config(raw, source="sim.yaml")
    assert exc.value.file == "sim.yaml" and exc.value.field == field and problem in exc.value.problem, repr(exc.value)


def test_unreadable_sim_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_sim_config(tmp_path / "missing.yaml")
    bad = tmp_path / "sim.yaml"
    bad.write_text("providers: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sim_config(bad)


def test_cli_registers_the_sim_command() -> None:
    from controlplane.cli import build_parser

    args = build_parser().parse_args(["sim", "-c", "examples/sim.yaml", "--admin-port", "0"])
    assert args.config == "examples/sim.yaml" and args.admin_port == 0 and callable(args.func)


@pytest.mark.integration
async def test_turnout_providers_validate_and_work_with_the_adapters() -> None:
    async with Simulator.from_yaml(SIM_CONFIG, clock=FakeClock()) as sim:
        entries = sim.turnout_providers()
        cfg = Config.model_validate({"providers": entries})
        assert [p.id for p in cfg.providers] == [p["id"] for p in SIM_CONFIG["providers"]]
        assert all(ProviderConfig.model_validate(e).status_page for e in entries)
        async with aiohttp.ClientSession() as session:
            for provider in cfg.providers:
                adapter = get_adapter(provider.adapter)
                listing = await adapter.list_models(session, provider, timeout=5)
                assert listing.models == [m.name for m in provider.models], provider.id
                model = provider.models[0].name
                probe = await adapter.probe_completion(
                    session, provider, model, prompt="ping", max_tokens=16, timeout=5
                )
                assert probe.classification.error_class is ErrorClass.OK, (provider.id, probe.classification)
                assert probe.output_tokens == 3 and probe.ttft_s is not None, (provider.id, probe)
            sim.set_fault("gg", "model_gone", model="gem-x")
            gg = cfg.provider("gg")
            assert gg is not None
            assert (await get_adapter("gemini").list_models(session, gg, timeout=5)).models == ["gem-y"]
            probe = await get_adapter("gemini").probe_completion(
                session, gg, "gem-x", prompt="ping", max_tokens=16, timeout=5
            )
            assert probe.classification.error_class is ErrorClass.MODEL_GONE


@pytest.mark.integration
async def test_example_simulator_runs_on_free_ports() -> None:
    async with Simulator.from_yaml(ROOT / "examples" / "sim.yaml", clock=FakeClock(), free_ports=True) as sim:
        fixed = {p.port for p in load_sim_config(ROOT / "examples" / "sim.yaml").providers}
        assert not {sim.port(p.id) for p in sim.config.providers} & fixed
        assert sim.timeline.running
        async with aiohttp.ClientSession() as session:
            async with session.get(sim.base_url("sim-vllm") + "/models") as r:  # no key needed
                assert r.status == 200
            async with session.get(sim.admin_url + "/providers") as r:
                assert len((await r.json())["providers"]) == 5
