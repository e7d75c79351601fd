"""The demo's scripted story: which simulated providers exist, how Turnout is configured for them, and the
chapters (faults) played on a timeline that `--speed` compresses.

Chapters pick their victim when they fire, from the published table (the route's primary *now*), so the
story stays true whatever the ranker decided during warm-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from controlplane.config import Config
from controlplane.config_loader import parse_config
from controlplane.table import Table

__all__ = ["STORY_SECONDS", "TOP_ROUTE", "Chapter", "Fault", "chapters", "sim_config", "turnout_config", "scaled"]

TOP_ROUTE = "frontier"  # the route whose primary model gets withdrawn
SIDE_ROUTE = "cheap-fast"
STORY_SECONDS = 84.0  # at --speed 1 (the whole demo, start-up included, stays well under two minutes)
KEY = "sim-demo-key"  # the simulator accepts this fixed key; it is not a secret and opens nothing real


def scaled(seconds: float, speed: float, floor: float = 0.05) -> float:
    """Story time → wall time at `speed` (never below `floor`, so timers stay meaningful)."""
    return max(floor, seconds / speed)


def sim_config() -> dict[str, Any]:
    """Five simulated providers named like real ones, on free ports (the demo must not collide with anything)."""

    def p(
        pid: str, family: str, models: list[str], latency: str, ttft: str, rate: int, region: str, jur: str, **kw: Any
    ) -> dict[str, Any]:
        return {
            "id": pid,
            "family": family,
            "port": 0,
            "api_key": KEY,
            "latency": latency,
            "ttft": ttft,
            "token_rate": rate,
            "region": region,
            "jurisdiction": jur,
            "models": [{"name": m} for m in models],
            # generous limits: the demo's own traffic must not trip them; the storm chapter is scripted
            "rate_limits": {"requests": 100_000, "tokens": 100_000_000, "window": "1m"},
            **kw,
        }

    return {
        "host": "127.0.0.1",
        "admin_port": 0,
        "seed": 7,
        "providers": [
            p("openai", "openai", ["gpt-4o"], "40ms", "80ms", 400, "us", "us", flavor="openai"),
            p("anthropic", "anthropic", ["claude-sonnet-4"], "50ms", "100ms", 400, "us", "us"),
            p("gemini", "gemini", ["gemini-2.5-pro", "gemini-2.5-flash"], "60ms", "90ms", 400, "us", "us"),
            p("deepseek", "openai", ["deepseek-chat"], "70ms", "120ms", 300, "cn", "cn", flavor="deepseek"),
            p("vllm", "openai", ["llama-3.1-8b-instruct"], "10ms", "30ms", 600, "local", "self", flavor="vllm"),
        ],
    }


def turnout_config(
    providers: list[dict[str, Any]], *, db_url: str, data_port: int, control_port: int, speed: float, admin_token: str
) -> Config:
    """Turnout pointed at the simulator, with probe and breaker timings compressed by `speed`."""
    prices = {
        "gpt-4o": (2.5, 10.0),
        "claude-sonnet-4": (3.0, 15.0),
        "gemini-2.5-pro": (1.25, 10.0),
        "gemini-2.5-flash": (0.3, 2.5),
        "deepseek-chat": (0.27, 1.1),
    }
    provs = []
    for entry in providers:
        e = dict(entry)
        e["models"] = [
            {**m, "price": dict(zip(("input", "output"), prices.get(m["name"], (0.0, 0.0)), strict=True))}
            for m in e["models"]
        ]
        provs.append(e)

    def s(seconds: float) -> str:
        return f"{scaled(seconds, speed):.3f}s"

    raw: dict[str, Any] = {
        "server": {
            "data": {"host": "127.0.0.1", "port": data_port},
            "control": {"host": "127.0.0.1", "port": control_port},
        },
        "database": {"url": db_url},
        "auth": {"public_read": True, "tokens": [{"token": admin_token, "scope": "admin", "name": "demo"}]},
        "providers": provs,
        "routes": [
            {"name": TOP_ROUTE, "targets": ["anthropic/claude-sonnet-4", "openai/gpt-4o", "gemini/gemini-2.5-pro"]},
            {
                "name": SIDE_ROUTE,
                "targets": ["vllm/llama-3.1-8b-instruct", "deepseek/deepseek-chat", "gemini/gemini-2.5-flash"],
            },
        ],
        "probes": {
            "interval": s(4),
            "jitter": 0.1,
            "timeout": "5s",
            "kinds": {
                "catalogue": {"interval": s(4)},
                "completion": {"interval": s(3)},
                "status_page": {"interval": s(6)},
            },
        },
        "breaker": {
            "window": s(10),
            "min_calls": 4,
            "slow_call_threshold": "800ms",
            "slow_call_rate_threshold": 0.6,
            "consecutive_failures": 4,
            "open_duration": s(10),
            "open_duration_max": s(30),
            "withdrawn_recheck": s(30),
            "overload_cooldown": s(4),
        },
        "ranking": {"margin": 0.15},
        "webhooks": {"allow_private_networks": ["127.0.0.0/8"]},
        "dataplane": {
            "total_timeout": "30s",
            "connect_timeout": "2s",
            "first_byte_timeout": "8s",
            "stall_timeout": "8s",
        },
    }
    return parse_config(yaml.safe_dump(raw, sort_keys=False), source="<demo>")


@dataclass(frozen=True)
class Fault:
    """One fault a chapter switches on (kwargs for `Simulator.set_fault`)."""

    provider: str
    fault: str
    model: str | None = None
    duration: float | None = None
    probability: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        """The target keys this fault can hurt (its model, or every model when it hits the whole provider)."""
        return [f"{self.provider}/{self.model}"] if self.model else [self.provider]


@dataclass(frozen=True)
class Chapter:
    """One beat of the story: at story second `at`, `plan(table)` decides the faults and the headline."""

    at: float
    key: str
    plan: Callable[[Table, dict[str, list[str]]], tuple[str, list[Fault]]]
    clear: bool = False  # clear every earlier fault except withdrawals before applying


def _primary(table: Table, route: str) -> str | None:
    r = table.routes.get(route)
    return r.primary.target if r and r.primary else None


def _ranked(table: Table, route: str) -> list[str]:
    r = table.routes.get(route)
    return [e.target for e in r.admissible] if r else []


def _latency(table: Table, hit: dict[str, list[str]]) -> tuple[str, list[Fault]]:
    target = _primary(table, SIDE_ROUTE) or "vllm/llama-3.1-8b-instruct"
    provider = target.split("/")[0]
    return (
        f"latency degradation: {provider} answers 1.2 s slower ({SIDE_ROUTE}'s primary)",
        [Fault(provider, "latency", params={"seconds": 1.2})],
    )


def _storm(table: Table, hit: dict[str, list[str]]) -> tuple[str, list[Fault]]:
    slowed = {t.split("/")[0] for t in hit.get("latency", [])}
    ranked = [t for t in _ranked(table, TOP_ROUTE) if t.split("/")[0] not in slowed] or ["anthropic/claude-sonnet-4"]
    provider, model = ranked[0].split("/", 1)
    return (
        f"rate-limit storm: {provider} answers 429 (retry-after) to 90% of calls on {model}",
        [Fault(provider, "rate_limited", model=model, probability=0.9)],
    )


def _withdrawal(table: Table, hit: dict[str, list[str]]) -> tuple[str, list[Fault]]:
    target = _primary(table, TOP_ROUTE) or "openai/gpt-4o"
    provider, model = target.split("/", 1)
    return (
        f"export-control directive: {model} withdrawn for this region at {provider} ({TOP_ROUTE}'s primary)",
        [Fault(provider, "region_blocked", model=model)],
    )


def _calm(table: Table, hit: dict[str, list[str]]) -> tuple[str, list[Fault]]:
    return ("latency and rate limits back to normal; the withdrawn model stays out (rechecked slowly)", [])


def chapters() -> list[Chapter]:
    """The story at --speed 1: warm-up, latency, rate-limit storm, withdrawal, calm, end at STORY_SECONDS."""
    return [
        Chapter(12.0, "latency", _latency),
        Chapter(30.0, "storm", _storm),
        Chapter(50.0, "withdrawal", _withdrawal),
        Chapter(70.0, "calm", _calm, clear=True),
    ]
