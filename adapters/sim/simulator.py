"""The provider simulator as one object: every simulated provider on its own port, the shared fault book,
stats and timeline, the admin server, and the Python API tests use (`async with Simulator.from_yaml(...)`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, Unpack

from aiohttp import web

from adapters.sim.admin import build_admin_app
from adapters.sim.catalogue import resolve_fault
from adapters.sim.config import SIM_AWS_ACCESS_KEY_ID, SimConfig, TimelineEntry, load_sim_config, parse_sim_config
from adapters.sim.faults import FaultBook
from adapters.sim.provider import ProviderServer
from adapters.sim.stats import Stats
from adapters.sim.timeline import Timeline
from controlplane.clock import Clock, SystemClock

__all__ = ["Simulator"]

log = logging.getLogger(__name__)

_TICK_S = 0.2  # real-clock cadence of the background tick (durations, timeline, listener restarts)


class SimOptions(TypedDict, total=False):
    """Simulator's keyword options, for `Simulator.from_yaml(source, **options)`."""

    clock: Clock | None
    admin: bool
    admin_port: int | None
    free_ports: bool


class Simulator:
    """Simulated LLM providers with switchable faults.

    With no clock given it uses the real clock and ticks itself in the background. With an injected clock
    (e.g. FakeClock) nothing happens on its own: call `await sim.advance(s)` or `await sim.tick()`."""

    def __init__(
        self,
        config: SimConfig,
        *,
        clock: Clock | None = None,
        admin: bool = True,
        admin_port: int | None = None,
        free_ports: bool = False,
    ) -> None:
        if free_ports:  # tests run in parallel: never the file's fixed ports
            config = config.model_copy(
                update={"admin_port": 0, "providers": [p.model_copy(update={"port": 0}) for p in config.providers]}
            )
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._autotick = clock is None
        self._stopping = asyncio.Event()
        self.stats_counter = Stats()
        self.book = FaultBook(self.clock, seed=config.seed, on_change=self._listener_may_change)
        self.timeline = Timeline(list(config.timeline), self.clock)
        self.providers: dict[str, ProviderServer] = {
            p.id: ProviderServer(
                p, host=config.host, book=self.book, stats=self.stats_counter, clock=self.clock, stopping=self._stopping
            )
            for p in config.providers
        }
        self._admin_enabled = admin
        self._admin_port = config.admin_port if admin_port is None else admin_port
        self._admin_runner: web.AppRunner | None = None
        self.admin_port: int | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._started = False

    @classmethod
    def from_yaml(cls, source: str | Path | Mapping[str, Any], **kwargs: Unpack[SimOptions]) -> Simulator:
        """From a `sim.yaml` path, YAML text containing `providers:`, or an already-parsed mapping."""
        if isinstance(source, Mapping):
            return cls(parse_sim_config(source), **kwargs)
        if isinstance(source, str) and "providers:" in source and "\n" in source:
            return cls(parse_sim_config(source), **kwargs)
        return cls(load_sim_config(source), **kwargs)

    # -- lifecycle --
    async def start(self) -> None:
        self._stopping = asyncio.Event()
        for server in self.providers.values():
            server._stopping = self._stopping
        started: list[ProviderServer] = []
        try:
            for server in self.providers.values():
                await server.start()
                started.append(server)
            if self._admin_enabled:
                self._admin_runner = web.AppRunner(
                    build_admin_app(self), access_log=None, shutdown_timeout=1.0, handle_signals=False
                )
                await self._admin_runner.setup()
                site = web.TCPSite(self._admin_runner, self.config.host, self._admin_port)
                await site.start()
                self.admin_port = int(self._admin_runner.addresses[0][1])
        except BaseException:
            self._stopping.set()
            for server in started:
                await server.close()
            if self._admin_runner is not None:
                await self._admin_runner.cleanup()
            raise
        self._started = True
        if self.config.timeline_autostart and self.config.timeline:
            self.timeline.start()
        if self._autotick:
            self._ticker = asyncio.create_task(self._tick_forever())
        await self.tick()

    async def stop(self) -> None:
        """Release held requests, close every listener and connection, stop the admin server."""
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.cancel()
            with suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for server in self.providers.values():
            await server.close()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        self._started = False

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            await self.tick()

    async def tick(self) -> None:
        """Expire faults, fire due timeline entries, and bring listeners in line with `refused` faults."""
        self.book.expire()
        for scheduled, entry in self.timeline.due():
            self._apply(entry, scheduled)
        self.book.expire()  # an entry whose whole duration already passed
        for pid, server in self.providers.items():
            if self._started and not server.listening and not self.book.refusing(pid):
                self._listener_may_change(pid)
            await server.settle()

    async def advance(self, seconds: float) -> None:
        """Move an injected clock forward and tick (needs a clock with `advance`, such as FakeClock)."""
        move = getattr(self.clock, "advance", None)
        if move is None:
            raise TypeError("advance() needs an injected clock with advance(); this simulator runs on the real clock")
        move(seconds)
        await self.tick()

    def _apply(self, entry: TimelineEntry, scheduled: float) -> None:
        if entry.clear:
            self.book.clear(entry.provider, entry.model)
            return
        assert entry.fault is not None
        self.set_fault(
            entry.provider,
            entry.fault,
            model=entry.model,
            count=entry.count,
            duration=entry.duration,
            probability=entry.probability,
            _start=scheduled,
            **entry.params,
        )

    def _listener_may_change(self, provider: str) -> None:
        server = self.providers.get(provider)
        if server is None:
            return
        if self.book.refusing(provider):
            server.stop_listening()
            return
        try:
            server.start_listening()
        except OSError as exc:
            # Someone took the port while it was closed; the next tick tries again.
            log.warning(
                "simulated provider %s cannot listen again on port %s: %s", provider, server.port, exc.strerror or exc
            )

    @property
    def stopping(self) -> asyncio.Event:
        """Set while the simulator shuts down: held requests let go."""
        return self._stopping

    # -- addresses --
    def _server(self, provider: str) -> ProviderServer:
        try:
            return self.providers[provider]
        except KeyError:
            raise KeyError(f"unknown simulated provider {provider!r}; known: {', '.join(self.providers)}") from None

    def base_url(self, provider: str) -> str:
        """What a Turnout ProviderConfig.base_url should be: `/v1` (OpenAI family), bare (Anthropic), `/v1beta` (Gemini)."""
        return self._server(provider).base_url

    def root_url(self, provider: str) -> str:
        return self._server(provider).root_url

    def port(self, provider: str) -> int:
        return self._server(provider).port

    @property
    def admin_url(self) -> str:
        if self.admin_port is None:
            raise RuntimeError("the admin server is not running (start the simulator, with admin=True)")
        return f"http://{self.config.host}:{self.admin_port}"

    def status_page_url(self, provider: str, kind: str = "summary") -> str:
        """Statuspage `summary.json`/`status.json`, or Google-style `incidents.json`, for this provider."""
        self._server(provider)
        path = {"summary": "api/v2/summary.json", "status": "api/v2/status.json", "incidents": "incidents.json"}[kind]
        return f"{self.admin_url}/status/{provider}/{path}"

    # -- faults --
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
    ) -> str:
        """Switch a fault on (catalogue id like `AN-529` or alias like `overloaded`); returns its id.

        Holds for the next `count` calls, `duration` seconds of the simulator clock, with `probability`
        per call, or until cleared. `params` tune it (`seconds`, `interval`, `rate`, `status`, `hint`, …)."""
        server = self._server(provider)
        if model is not None and server.cfg.model(model) is None:
            raise ValueError(
                f"provider {provider!r} has no model {model!r}; known: {', '.join(m.name for m in server.cfg.models)}"
            )
        spec = resolve_fault(fault, server.cfg.family, server.cfg.effective_flavor)
        spec.check_params(params)
        rule = self.book.add(
            provider,
            spec,
            model=model,
            count=count,
            duration=duration,
            probability=probability,
            params=params,
            start=_start,
        )
        return rule.id

    def clear_faults(self, provider: str | None = None, model: str | None = None, fault_id: str | None = None) -> int:
        """Clear one fault by id, or every fault of a provider (and model); None clears everything."""
        if fault_id is not None:
            return int(self.book.remove(fault_id))
        if provider is not None:
            self._server(provider)
        return self.book.clear(provider, model)

    def faults(self) -> list[dict[str, Any]]:
        now = self.clock.monotonic()
        return [r.to_json(now) for r in self.book.rules()]

    def reset(self) -> None:
        """Everything back to the start: no faults, fresh limits and stats, timeline restarted if configured."""
        self.book.clear()
        self.stats_counter.reset()
        for server in self.providers.values():
            server.limiter.reset()
        self.timeline.replace(list(self.config.timeline))
        if self.config.timeline_autostart and self.config.timeline:
            self.timeline.start()
        else:
            self.timeline.stop()

    # -- stats --
    def stats(self) -> dict[str, Any]:
        """Requests per provider/model/endpoint, faults fired and statuses sent (see docs/simulator.md)."""
        return self.stats_counter.to_json(list(self.providers))

    def requests(self, provider: str | None = None, model: str | None = None, endpoint: str | None = None) -> int:
        return self.stats_counter.requests_for(provider, model, endpoint)

    def reset_stats(self) -> None:
        self.stats_counter.reset()

    # -- Vertex credentials --
    def service_account_info(self, provider: str) -> dict[str, Any]:
        """A service-account JSON for a simulated Vertex provider: its key is trusted by the provider's `/token`."""
        server = self._server(provider)
        if server.tokens is None:
            raise ValueError(f"provider {provider!r} is not a vertex provider")
        return server.tokens.service_account_info(f"{server.root_url}/token", server.cfg.project)

    def access_token(self, provider: str) -> str:
        """A bearer token a simulated Vertex provider accepts (for clients given a bare token)."""
        server = self._server(provider)
        if server.tokens is None:
            raise ValueError(f"provider {provider!r} is not a vertex provider")
        return server.tokens.grant()

    # -- Turnout config --
    def turnout_providers(self) -> list[dict[str, Any]]:
        """Turnout `providers:` entries (ProviderConfig shape) pointing at these simulated providers."""
        out: list[dict[str, Any]] = []
        for pid, server in self.providers.items():
            p = server.cfg
            entry: dict[str, Any] = {
                "id": pid,
                "adapter": p.family,
                "base_url": server.base_url,
                "region": p.region,
                "jurisdiction": p.jurisdiction,
                "models": [{"name": m.name, "context_window": m.context_window} for m in p.models],
            }
            if p.family == "bedrock":  # SigV4 keys instead of an api_key; the catalogue on the same port
                entry["catalogue_url"] = server.root_url
                entry["region"] = "us-east-1" if p.region == "default" else p.region
                if p.api_key is not None:
                    entry["aws_access_key_id"] = SIM_AWS_ACCESS_KEY_ID
                    entry["aws_secret_access_key"] = p.api_key
            elif p.family == "vertex":  # bearer tokens from credentials_file (see service_account_info)
                entry["project"] = p.project
                entry["region"] = "us-central1" if p.region == "default" else p.region
            elif p.api_key is not None:
                entry["api_key"] = p.api_key
            if p.flavor is not None:
                entry["flavor"] = p.flavor
            if self.admin_port is not None:
                entry["status_page"] = self.status_page_url(pid)
                entry["status_components"] = ["API"]
            out.append(entry)
        return out
