"""The simulator's configuration (`sim.yaml`): simulated providers, their models, limits and timing, and
the fault timeline. Mistakes become a `ConfigError` naming the file and the field, like `turnout.yaml`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controlplane.durations import Duration
from controlplane.errors import ConfigError

__all__ = [
    "DEMO_API_KEY",
    "SIM_AWS_ACCESS_KEY_ID",
    "FAMILIES",
    "SimModel",
    "RateLimits",
    "SimProvider",
    "TimelineEntry",
    "SimConfig",
    "load_sim_config",
    "parse_sim_config",
]

# The key every example provider expects: the demo needs no real credentials.
DEMO_API_KEY = "sim-demo-key"
FAMILIES = ("openai", "anthropic", "gemini", "bedrock", "vertex")
# The access key id of every simulated Bedrock provider; its `api_key` is the secret access key.
SIM_AWS_ACCESS_KEY_ID = "AKIASIMULATOR0000001"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimModel(_Model):
    """One model a simulated provider serves."""

    name: str = Field(min_length=1)
    context_window: int = Field(default=128_000, gt=0)
    answer: str | None = Field(default=None, description='reply text; default "Hello from {provider}/{model}"')
    display_name: str | None = None


class RateLimits(_Model):
    """Per-provider limits that really decrement; reset every `window` of (injected) clock time."""

    requests: int = Field(default=500, gt=0)
    tokens: int = Field(default=200_000, gt=0)
    window: Duration = Field(default=60.0, description="limits refill after this long")


class SimProvider(_Model):
    """One simulated provider: its own port, wire family, host flavor, models, key, limits and timing."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    family: Literal["openai", "anthropic", "gemini", "bedrock", "vertex"]
    flavor: str | None = Field(
        default=None, description="openai, azure, deepseek, vllm, llamacpp, ollama, openrouter, groq, …"
    )
    port: int = Field(default=0, ge=0, le=65535, description="0 = pick a free port")
    api_key: str | None = Field(
        default=DEMO_API_KEY,
        description="key the provider expects (bedrock: the secret access key of SIM_AWS_ACCESS_KEY_ID); null = no auth",
    )
    models: list[SimModel] = Field(min_length=1)
    rate_limits: RateLimits = RateLimits()
    latency: Duration = Field(default=0.0, description="delay before response headers")
    ttft: Duration = Field(default=0.0, description="delay between headers and the first token")
    token_rate: float | None = Field(default=None, gt=0, description="output tokens per second; null = instant")
    region: str = "default"
    jurisdiction: str = "unknown"
    page_size: int = Field(default=20, ge=1, description="catalogue page size (Anthropic `limit`, Gemini `pageSize`)")
    project: str = Field(default="sim-project", description="vertex: the project in its paths")
    token_lifetime: Duration = Field(default=3600.0, description="vertex: lifetime of the access tokens it issues")

    @property
    def effective_flavor(self) -> str:
        return self.flavor or self.family

    def model(self, name: str) -> SimModel | None:
        return next((m for m in self.models if m.name == name), None)


class TimelineEntry(_Model):
    """At `at` seconds after the timeline starts, set (or with `clear: true`, clear) a fault."""

    at: Duration
    provider: str
    fault: str | None = None
    model: str | None = None
    count: int | None = Field(default=None, ge=1)
    duration: Duration | None = None
    probability: float | None = Field(default=None, gt=0, le=1)
    params: dict[str, Any] = {}
    clear: bool = False

    @model_validator(mode="after")
    def _fault_or_clear(self) -> TimelineEntry:
        if not self.clear and not self.fault:
            raise ValueError("a timeline entry needs `fault: NAME` (or `clear: true`)")
        return self


class SimConfig(_Model):
    """The whole `sim.yaml`."""

    host: str = "127.0.0.1"
    admin_port: int = Field(default=0, ge=0, le=65535)
    seed: int = Field(default=0, description="seeds probability faults so runs repeat")
    providers: list[SimProvider] = Field(min_length=1)
    timeline: list[TimelineEntry] = []
    timeline_autostart: bool = Field(default=True, description="start the timeline when the simulator starts")

    @field_validator("providers")
    @classmethod
    def _unique(cls, v: list[SimProvider]) -> list[SimProvider]:
        ids = [p.id for p in v]
        for i, pid in enumerate(ids):
            if pid in ids[:i]:
                raise ValueError(f"duplicate provider id {pid!r}")
        return v

    @model_validator(mode="after")
    def _timeline_refs(self) -> SimConfig:
        from adapters.sim.catalogue import resolve_fault  # late: the catalogue imports this module's types

        for i, e in enumerate(self.timeline):
            p = self.provider(e.provider)
            if p is None:
                raise ValueError(
                    f"timeline[{i}]: unknown provider {e.provider!r}; known: {', '.join(x.id for x in self.providers)}"
                )
            if e.model is not None and p.model(e.model) is None:
                raise ValueError(f"timeline[{i}]: provider {p.id!r} has no model {e.model!r}")
            if e.fault:
                try:
                    resolve_fault(e.fault, p.family, p.effective_flavor)
                except ValueError as exc:
                    raise ValueError(f"timeline[{i}]: {exc}") from None
        return self

    def provider(self, provider_id: str) -> SimProvider | None:
        return next((p for p in self.providers if p.id == provider_id), None)


def parse_sim_config(data: Mapping[str, Any] | str, source: str = "<memory>") -> SimConfig:
    """Validate a sim config from a mapping or YAML text; raise ConfigError naming the field on a mistake."""
    raw: Any = data
    if isinstance(data, str):
        try:
            raw = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise ConfigError(
                source, "", f"not valid YAML: {getattr(exc, 'problem', exc)}", "fix the YAML syntax"
            ) from None
    if not isinstance(raw, Mapping):
        raise ConfigError(
            source, "", "the top level must be a mapping with `providers:`", "start from examples/sim.yaml"
        )
    try:
        return SimConfig.model_validate(dict(raw))
    except ValidationError as exc:
        # A misspelt key also makes the real one "missing": report the unknown field first, it is the cause.
        errors = sorted(exc.errors(include_url=False), key=lambda err: err["type"] != "extra_forbidden")
        e = errors[0]
        field = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field {str(e['loc'][-1])!r}"
        if len(errors) > 1:
            msg += f" [and {len(errors) - 1} more]"
        raise ConfigError(source, field, msg, "see docs/simulator.md") from None


def load_sim_config(path: str | Path) -> SimConfig:
    """Read and validate a `sim.yaml`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}", "pass -c path/to/sim.yaml") from None
    return parse_sim_config(text, source=str(path))
