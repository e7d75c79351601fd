"""The provider simulator: OpenAI-compatible, Anthropic and Gemini wire formats on one port per simulated
provider, with every fault of provider-semantics.md §7 switchable at runtime or on a timeline.

    async with Simulator.from_yaml("examples/sim.yaml", clock=FakeClock()) as sim:
        sim.set_fault("sim-anthropic", "overloaded", count=2)
        ...
"""

from __future__ import annotations

from adapters.sim.catalogue import ALIASES, FAULTS, Behaviour, FaultSpec, resolve_fault
from adapters.sim.config import (
    DEMO_API_KEY,
    SimConfig,
    SimModel,
    SimProvider,
    TimelineEntry,
    load_sim_config,
    parse_sim_config,
)
from adapters.sim.simulator import Simulator

__all__ = [
    "ALIASES",
    "DEMO_API_KEY",
    "FAULTS",
    "Behaviour",
    "FaultSpec",
    "SimConfig",
    "SimModel",
    "SimProvider",
    "Simulator",
    "TimelineEntry",
    "load_sim_config",
    "parse_sim_config",
    "resolve_fault",
]
