"""The seam between the simulator and its admin API: what the admin handlers drive (SimControl) and where they
find it (the SIMULATOR app key). `Simulator` (adapters/sim/simulator.py) implements SimControl; the admin modules
name only this, so the simulator can import them without a circle."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from adapters.sim.config import SimConfig

if TYPE_CHECKING:
    from adapters.sim.faults import FaultBook
    from adapters.sim.provider import ProviderServer
    from adapters.sim.timeline import Timeline
    from controlplane.clock import Clock

__all__ = ["SimControl", "SIMULATOR", "bad_request"]


class SimControl(Protocol):
    """What the admin API drives (`Simulator` is one)."""

    config: SimConfig
    clock: Clock
    book: FaultBook
    timeline: Timeline
    providers: dict[str, ProviderServer]

    @property
    def stopping(self) -> asyncio.Event: ...

    def status_page_url(self, provider: str, kind: str = "summary") -> str: ...

    def set_fault(
        self,
        provider: str,
        fault: str,
        model: str | None = None,
        count: int | None = None,
        duration: float | None = None,
        probability: float | None = None,
        _start: float | None = None,
        **params: Any,
    ) -> str: ...

    def clear_faults(
        self, provider: str | None = None, model: str | None = None, fault_id: str | None = None
    ) -> int: ...

    def faults(self) -> list[dict[str, Any]]: ...

    def reset(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def reset_stats(self) -> None: ...

    async def tick(self) -> None: ...

    async def advance(self, seconds: float) -> None: ...


SIMULATOR: web.AppKey[SimControl] = web.AppKey("simulator")


def bad_request(message: str, status: int = 400) -> web.Response:
    """An admin API error: `{"error": message}`."""
    return web.json_response({"error": message}, status=status)
