"""ProbeContext: everything one probe run may use (session, adapter, config, clock, logger, budget).

A probe keeps no state and schedules nothing: whatever must outlive one run (the spend budget) is handed in
here by the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from controlplane.clock import Clock
from controlplane.config import CompletionProbeConfig, ModelConfig, ProviderConfig
from controlplane.domain import TargetRef

if TYPE_CHECKING:
    from adapters.base import ProbeAdapter
    from controlplane.domain import Observation
    from probes.budget import SpendBudget

__all__ = ["ProbeContext", "ProbeFn", "ProbeSkipped", "PROVIDER_LEVEL_KINDS"]

# Kinds that ask one question per provider (one HTTP call) and answer it for each of the provider's targets
# listed in `ProbeContext.targets`; the scheduler runs them once per provider, not once per target.
PROVIDER_LEVEL_KINDS: frozenset[str] = frozenset({"catalogue", "status_page", "health"})


class ProbeSkipped(Exception):
    """Raised by a probe that decided not to run (spend budget used up, not applicable); `reason` is a short
    fixed word used as a metric label. Not a failure: no observation is recorded."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class ProbeContext:
    """What a probe needs. `targets` lists the targets to report on (provider-level kinds); per-target kinds
    get just their own target there."""

    session: aiohttp.ClientSession
    adapter: ProbeAdapter
    provider: ProviderConfig
    model: ModelConfig | None
    clock: Clock
    timeout: float
    completion: CompletionProbeConfig = field(default_factory=CompletionProbeConfig)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("turnout.probes"))
    budget: SpendBudget | None = None
    targets: tuple[TargetRef, ...] = ()

    def report_targets(self, target: TargetRef) -> tuple[TargetRef, ...]:
        """The targets a run reports on: `targets` when given, else just `target`."""
        return self.targets or (target,)


ProbeFn = Callable[[TargetRef, ProbeContext], Awaitable["list[Observation]"]]
