"""Turnout's configuration (`turnout.yaml`) as pydantic models: every section, its defaults and its checks.

Reading a file into a `Config` (YAML, `${ENV}` expansion, errors that name the file, the field and the fix) is
controlplane/config_loader.py. Cross-field checks raise `FieldProblem` with their own dotted path. Secrets
(`api_key`, auth tokens) are `SecretStr`: they never print, log or serialise in clear.

Longer than most modules on purpose: the whole schema in one file, in the order docs/config.md renders it.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from controlplane.domain import TargetRef
from controlplane.durations import Duration

__all__ = [
    "ADAPTERS",
    "CLOUD_EXTRAS",
    "PROBE_KINDS_KNOWN",
    "Config",
    "ServerConfig",
    "ListenConfig",
    "DatabaseConfig",
    "AuthConfig",
    "DataAuthConfig",
    "TokenConfig",
    "ProviderConfig",
    "ModelConfig",
    "PriceConfig",
    "RouteConfig",
    "RoutePolicy",
    "HedgingConfig",
    "LearnedDeadlineConfig",
    "PanelConfig",
    "ProbeConfig",
    "ProbeKindConfig",
    "CompletionProbeConfig",
    "BreakerConfig",
    "RankingConfig",
    "WebhookConfig",
    "DataPlaneConfig",
    "ResponsesStateConfig",
    "FieldProblem",
    "FieldProblems",
    "route_problems_of_raw",
]

ADAPTERS = ("openai", "anthropic", "gemini", "bedrock", "vertex", "azure")
# The region-pinned clouds need their credentials library, installed as an optional extra (pyproject.toml).
CLOUD_EXTRAS: dict[str, tuple[str, str]] = {
    "bedrock": ("aws", "botocore"),
    "vertex": ("gcp", "google.auth"),
    "azure": ("azure", "azure.identity"),
}
# Kept in step with probes.PROBE_KINDS (a test checks the two agree).
PROBE_KINDS_KNOWN = ("catalogue", "completion", "status_page", "count_tokens", "health")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package (google) is missing too
        return False


class FieldProblem(ValueError):
    """A cross-field mistake with its own dotted path (pydantic would only say 'value error')."""

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field, self.problem, self.fix = field, problem, fix
        super().__init__(problem)


class FieldProblems(FieldProblem):
    """Every cross-field mistake one check found (pydantic carries a single exception out of a validator)."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__(problems[0].field, problems[0].problem, problems[0].fix)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)


class ServerConfig(_Model):
    data: ListenConfig = ListenConfig(host="127.0.0.1", port=8700)
    control: ListenConfig = ListenConfig(host="127.0.0.1", port=8701)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0, description="largest request body accepted (413 above)")


class DatabaseConfig(_Model):
    url: str = Field(default="sqlite:///turnout.db", description="sqlite:///path.db or postgresql+psycopg://…")
    observation_retention: Duration = Field(default=7 * 86400.0, description="how long raw observations are kept")
    rollup_retention: Duration = Field(default=90 * 86400.0, description="how long per-minute rollups are kept")
    event_retention: Duration = Field(default=90 * 86400.0, description="how long events are kept")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith("postgresql")):
            raise ValueError(
                f"unsupported database url {v!r}; use sqlite:///turnout.db or postgresql+psycopg://user@host/db"
            )
        return v


class TokenConfig(_Model):
    token: SecretStr
    scope: Literal["read", "admin"] = "read"
    name: str = ""


class DataAuthConfig(_Model):
    require_key: bool = Field(
        default=False,
        description="the data plane asks every client for a key even before any key exists (otherwise: once one does)",
    )
    anonymous: bool = Field(
        default=False,
        description=(
            "let turnout serve bind the data plane to a non-loopback address while no client key exists: anyone "
            "who reaches the port can then spend every provider key in this file"
        ),
    )
    refresh_interval: Duration = Field(
        default=2.0, gt=0, description="how often a data plane re-reads the key ring (revocations, expiry, spend)"
    )


class AuthConfig(_Model):
    public_read: bool = Field(default=True, description="read endpoints need no token when true")
    tokens: list[TokenConfig] = []
    data: DataAuthConfig = DataAuthConfig()


class PriceConfig(_Model):
    input: float = Field(default=0.0, ge=0, description="USD per million input tokens")
    output: float = Field(default=0.0, ge=0, description="USD per million output tokens")


class ModelConfig(_Model):
    name: str = Field(min_length=1)
    price: PriceConfig = PriceConfig()
    context_window: int | None = Field(default=None, gt=0, description="tokens; enables larger-context failover")
    reasoning: bool = Field(default=False, description="reasoning model: probes use a larger token budget")
    priority: int = Field(default=0, description="higher ranks earlier when scores are close")
    status_component: str | None = Field(default=None, description="status page component name for this model")
    kind: Literal["chat", "embedding"] = Field(
        default="chat", description="chat (completions, Responses, Messages) or embedding (POST /v1/embeddings)"
    )
    family: str | None = Field(
        default=None,
        description=(
            "embedding models: one name for one model spelled differently by providers; an embedding route's "
            "targets must share it (or the model name): vectors of different models are not interchangeable"
        ),
    )

    def family_key(self) -> str:
        return self.family or self.name


class ProviderConfig(_Model):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    adapter: str = Field(
        description="openai | anthropic | gemini | bedrock | vertex | azure (openai covers all OpenAI-compatible APIs)"
    )
    base_url: str = Field(
        description=(
            "the API's base URL; bedrock and vertex derive it from region (and project) when it is left out "
            "(bedrock: https://bedrock-runtime.{region}.amazonaws.com; vertex: the part before /projects/…)"
        )
    )
    api_key: SecretStr | None = Field(default=None, description='"${ENV_VAR}"; never written in clear')
    flavor: str | None = Field(
        default=None, description="openai-compatible host quirks: azure, deepseek, openrouter, groq, …"
    )
    api_version: str | None = Field(default=None, description="Azure api-version / anthropic-version override")
    region: str = "default"
    jurisdiction: str = "unknown"
    zero_retention: bool = False
    egress: str = Field(default="default", description="egress region this provider is reached from")
    status_page: str | None = Field(default=None, description="Statuspage summary.json URL")
    status_components: list[str] = Field(default=[], description="status page components that matter for this provider")
    headers: dict[str, str] = Field(default={}, description="extra request headers")
    stream_usage: bool = Field(
        default=True,
        description=(
            "OpenAI-compatible streams ask for the final usage chunk (`stream_options.include_usage`), which cost "
            "accounting reads; false for a host that rejects the field (its streams are then counted with 0 tokens)"
        ),
    )
    responses_api: Literal["auto", "native", "translate"] = Field(
        default="auto",
        description=(
            "openai adapter: does the host serve POST /responses itself (native: Responses requests pass through)? "
            "auto: native for flavor openai/azure and api.openai.com, translated to chat for every other host"
        ),
    )
    probe_budget_usd_per_day: float = Field(default=1.0, ge=0, description="spend cap for paid probes per day")
    # -- AWS Bedrock (adapter: bedrock); `region` is the signing region --
    catalogue_url: str | None = Field(
        default=None, description="bedrock: control-plane base (default https://bedrock.{region}.amazonaws.com)"
    )
    aws_access_key_id: SecretStr | None = Field(default=None, description='bedrock: "${ENV}"; absent = default chain')
    aws_secret_access_key: SecretStr | None = Field(default=None, description='bedrock: "${ENV}"')
    aws_session_token: SecretStr | None = Field(default=None, description='bedrock: "${ENV}" (temporary credentials)')
    # -- Google Vertex AI (adapter: vertex); `region` is the location (or `global`) --
    project: str | None = Field(default=None, description="vertex: the Google Cloud project id")
    credentials_file: str | None = Field(
        default=None,
        description="vertex: service-account JSON (${GOOGLE_APPLICATION_CREDENTIALS}); absent = application default",
    )
    models: list[ModelConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _cloud_base_url(cls, data: object) -> object:
        """Bedrock and Vertex endpoints follow from region (and project): base_url only overrides them."""
        if not isinstance(data, dict) or data.get("base_url"):
            return data
        region = data.get("region")
        if data.get("adapter") in ("bedrock", "vertex") and (not isinstance(region, str) or region == "default"):
            example = "eu-central-1" if data.get("adapter") == "bedrock" else "europe-west4"
            raise FieldProblem(
                "region",
                f"adapter {data.get('adapter')} needs a region (it signs for and reaches that region)",
                f"set region: {example} (or give base_url)",
            )
        if data.get("adapter") == "bedrock" and isinstance(region, str) and region != "default":
            return {**data, "base_url": f"https://bedrock-runtime.{region}.amazonaws.com"}
        if data.get("adapter") == "vertex" and isinstance(region, str) and region != "default":
            host = "aiplatform.googleapis.com" if region == "global" else f"{region}-aiplatform.googleapis.com"
            return {**data, "base_url": f"https://{host}/v1"}
        return data

    @model_validator(mode="after")
    def _cloud_fields(self) -> ProviderConfig:
        if self.adapter in ("bedrock", "vertex") and self.region == "default":
            example = "eu-central-1" if self.adapter == "bedrock" else "europe-west4"
            raise FieldProblem(
                "region",
                f"adapter {self.adapter} needs a region (it signs for and reaches that region)",
                f"set region: {example}",
            )
        if self.adapter == "vertex" and not self.project:
            raise FieldProblem("project", "adapter vertex needs the Google Cloud project id", "set project: my-project")
        if self.credentials_file is not None and not os.path.isfile(self.credentials_file):
            raise FieldProblem(
                "credentials_file",
                f"no such file: {self.credentials_file}",
                "name a service-account JSON file, or leave it out for application default credentials",
            )
        keys = (self.aws_access_key_id, self.aws_secret_access_key)
        if self.adapter == "bedrock" and (keys[0] is None) != (keys[1] is None):
            raise FieldProblem(
                "aws_secret_access_key" if keys[1] is None else "aws_access_key_id",
                "aws_access_key_id and aws_secret_access_key come together",
                "set both (each as ${ENV}), or neither to use the default credential chain",
            )
        return self

    @field_validator("catalogue_url")
    @classmethod
    def _http_catalogue_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"catalogue_url must be an http(s) URL, got {v!r}")
        return v.rstrip("/") if v else v

    @field_validator("adapter")
    @classmethod
    def _known_adapter(cls, v: str) -> str:
        if v not in ADAPTERS:
            raise ValueError(f"unknown adapter {v!r}; known: {', '.join(ADAPTERS)}")
        return v

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"base_url must be an http(s) URL, got {v!r}")
        return v.rstrip("/")

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)


class RoutePolicy(_Model):
    allow_regions: list[str] = Field(default=[], description="empty = any region")
    allow_jurisdictions: list[str] = Field(default=[], description="empty = any jurisdiction")
    deny_jurisdictions: list[str] = []
    deny_providers: list[str] = []
    deny_targets: list[str] = []
    require_zero_retention: bool = False
    max_price: float | None = Field(default=None, ge=0, description="USD per million output tokens")


class HedgingConfig(_Model):
    enabled: bool = False
    min_delay: Duration = Field(default=0.2, description="never hedge earlier than this")
    percentile: float = Field(default=0.95, gt=0, lt=1, description="hedge once TTFT exceeds this percentile")


class PanelConfig(_Model):
    from_: list[str] = Field(default=[], alias="from")
    size: int = Field(default=3, ge=1)
    distinct_providers: bool = True
    quorum: int = Field(default=2, ge=1)
    member_deadline: Duration = 30.0
    judge: str | None = None
    synthesizer: str | None = None
    degrade_to_single: bool = False
    judge_template: str | None = None
    synthesizer_template: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("judge_template", "synthesizer_template")
    @classmethod
    def _template_placeholders(cls, v: str | None) -> str | None:
        # dataplane/panel/prompts.py fills these names; without {answers} the stage never sees the panel's work.
        known = ("question", "answers", "analysis", "count")
        if v is None:
            return v
        unknown = [n for n in re.findall(r"\{([a-z_]+)\}", v) if n not in known]
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; known: {{question}}, {{answers}}, {{analysis}}, {{count}}"
            )
        if "{answers}" not in v:
            raise ValueError("a panel template must contain {answers} (the panel's answers go there)")
        return v


class RouteConfig(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    mode: Literal["failover", "panel"] = "failover"
    targets: list[str] = []
    policy: RoutePolicy = RoutePolicy()
    spill_headroom: float = Field(default=0.05, ge=0, le=1, description="spill to the next target below this headroom")
    panic_threshold: float = Field(
        default=0.5, ge=0, le=1, description="share of admissible targets below which the route ranks least-bad"
    )
    hedging: HedgingConfig = HedgingConfig()
    resume_streams: bool = Field(
        default=False, description="a stream cut after content reached the client is continued by the next target"
    )
    panel: PanelConfig | None = None


class ProbeKindConfig(_Model):
    enabled: bool = True
    interval: Duration | None = Field(default=None, description="defaults to probes.interval")
    timeout: Duration | None = Field(default=None, description="defaults to probes.timeout")


class CompletionProbeConfig(_Model):
    prompt: str = "Reply with the single word: ok"
    max_tokens: int = Field(default=16, ge=1)
    reasoning_max_tokens: int = Field(
        default=512, ge=1, description="budget for reasoning models (1 token makes some fail)"
    )
    stream: bool = True


def _default_kinds() -> dict[str, ProbeKindConfig]:
    return {
        "catalogue": ProbeKindConfig(interval=60.0),
        "completion": ProbeKindConfig(interval=300.0),
        "status_page": ProbeKindConfig(interval=120.0),
    }


class ProbeConfig(_Model):
    interval: Duration = 15.0
    jitter: float = Field(default=0.2, ge=0, le=1, description="fraction of the interval")
    timeout: Duration = 10.0
    concurrency: int = Field(default=64, ge=1)
    kinds: dict[str, ProbeKindConfig] = Field(default_factory=_default_kinds)
    completion: CompletionProbeConfig = CompletionProbeConfig()

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: dict[str, ProbeKindConfig]) -> dict[str, ProbeKindConfig]:
        for kind in v:
            if kind not in PROBE_KINDS_KNOWN:
                raise ValueError(f"unknown probe kind {kind!r}; known: {', '.join(PROBE_KINDS_KNOWN)}")
        return v


class BreakerConfig(_Model):
    """Defaults follow Envoy outlier detection and resilience4j (see README, 'Breaker knobs')."""

    mode: Literal["enforce", "metrics_only"] = "enforce"
    window: Duration = Field(default=60.0, description="sliding time window")
    min_calls: int = Field(default=5, ge=1, description="calls in window before rates count")
    failure_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    slow_call_threshold: Duration = Field(default=10.0, description="a call slower than this is slow")
    slow_call_rate_threshold: float = Field(default=0.8, gt=0, le=1)
    consecutive_failures: int = Field(default=5, ge=1)
    open_duration: Duration = Field(default=30.0, description="first open duration")
    open_duration_max: Duration = Field(default=300.0, description="cap for the exponential open duration")
    open_min_duration: Duration = Field(
        default=2.0,
        description="a first opening lasts at least this long before a probe success moves it to half_open",
    )
    half_open_trials: int = Field(default=3, ge=1, description="trial calls admitted in half_open")
    half_open_successes: int = Field(default=2, ge=1, description="successes that close the breaker")
    withdrawn_recheck_first: Duration = Field(
        default=60.0, description="first recheck of a withdrawn target; doubles per failed recheck"
    )
    withdrawn_recheck: Duration = Field(default=900.0, description="longest recheck interval for withdrawn targets")
    overload_cooldown: Duration = Field(default=10.0, description="headroom held at 0 after overloaded")
    rate_limit_default_backoff: Duration = Field(default=1.0, description="first backoff when no retry-after")
    rate_limit_backoff_max: Duration = 60.0

    @model_validator(mode="after")
    def _consistent(self) -> BreakerConfig:
        if self.half_open_successes > self.half_open_trials:
            raise ValueError("half_open_successes must not exceed half_open_trials")
        if self.open_duration_max < self.open_duration:
            raise ValueError("open_duration_max must be at least open_duration")
        return self


class RankingConfig(_Model):
    margin: float = Field(default=0.15, ge=0, description="a challenger must beat the primary by this share of score")
    min_dwell: Duration = Field(
        default=10.0,
        ge=0,
        description=(
            "a primary that won its place by score keeps it this long unless it leaves admissibility (no flapping on"
            " noise); one standing in after a failover does not"
        ),
    )
    weight_latency: float = 1.0
    weight_ttft: float = 1.0
    weight_error_rate: float = 3.0
    weight_headroom: float = 1.0
    weight_price: float = 0.5
    weight_priority: float = 1.0
    half_open_share: float = Field(default=0.1, ge=0, le=1, description="share of traffic a half_open target gets")


class WebhookConfig(_Model):
    allow_private_networks: list[str] = Field(default=[], description='e.g. ["127.0.0.0/8"] for local receivers')
    timeout: Duration = 10.0
    max_attempts: int = Field(default=8, ge=1)
    disable_after_failures: int = Field(
        default=50, ge=1, description="consecutive dead deliveries that disable an endpoint"
    )
    retry_schedule: list[Duration] = Field(
        default=[5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        min_length=1,
        description="delay before each retry (Svix-like, ±20 % jitter); the last entry repeats",
    )

    @field_validator("allow_private_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a network: {net!r} (use CIDR like '127.0.0.0/8')") from exc
        return v


class ResponsesStateConfig(_Model):
    """Stored Responses conversations, for `previous_response_id` and `GET /v1/responses/{id}`."""

    store: bool = Field(
        default=False,
        description=(
            "keep each response's input and output in the data plane's memory for `retention`; off by default "
            "because it keeps prompts and answers"
        ),
    )
    retention: Duration = Field(default=3600.0, description="how long a stored response can be continued or read")
    max_entries: int = Field(default=10_000, ge=1, description="the oldest stored responses go first beyond this")


class LearnedDeadlineConfig(_Model):
    """Per-attempt first-byte deadlines learned from each target's recent answers (docs/dataplane.md)."""

    enabled: bool = Field(default=True, description="learn each target's first-byte deadline from its recent answers")
    percentile: float = Field(default=0.99, gt=0, lt=1, description="of the target's recent TTFT (or latency)")
    factor: float = Field(default=4.0, ge=1, description="the deadline is the percentile times this")
    floor: Duration = Field(default=1.0, description="never cut an attempt earlier than this")
    min_samples: int = Field(default=20, ge=1, description="fewer recent answers: first_byte_timeout applies")
    window: Duration = Field(default=300.0, description="answers older than this are forgotten")


class DataPlaneConfig(_Model):
    total_timeout: Duration = Field(default=120.0, description="deadline for a whole request incl. failovers")
    connect_timeout: Duration = 3.0
    first_byte_timeout: Duration = Field(
        default=30.0, description="per attempt: headers / first token (the bound of a learned deadline)"
    )
    learned_first_byte: LearnedDeadlineConfig = Field(
        default=LearnedDeadlineConfig(), description="per-target first-byte deadlines learned from recent answers"
    )
    stall_timeout: Duration = Field(default=30.0, description="streaming: no progress for this long ends the attempt")
    max_attempts: int = Field(default=4, ge=1)
    decision_log_retention: Duration = 30 * 86400.0
    report_batch: int = Field(default=200, ge=1, description="data replicas: outcomes per report batch")
    report_buffer: int = Field(
        default=10_000, ge=1, description="data replicas: outcomes buffered while control is down"
    )
    responses: ResponsesStateConfig = Field(
        default=ResponsesStateConfig(),
        description="stored Responses conversations for previous_response_id and GET /v1/responses/{id} (opt-in)",
    )
    table_file: str | None = Field(
        default=None,
        description="data replicas: the last table is kept in this file and served from it when a replica starts "
        "while no control replica answers; unset: turnout-replica-<data port>.json in $TURNOUT_STATE_DIR (default: "
        "the system temporary directory); empty: not kept",
    )


class ScaleOutConfig(_Model):
    leader_lease: Duration = Field(default=5.0, description="a follower takes over within about this time")
    poll_interval: Duration = 2.0


class Config(_Model):
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    auth: AuthConfig = AuthConfig()
    providers: list[ProviderConfig] = Field(min_length=1)
    routes: list[RouteConfig] = []
    probes: ProbeConfig = ProbeConfig()
    breaker: BreakerConfig = BreakerConfig()
    ranking: RankingConfig = RankingConfig()
    webhooks: WebhookConfig = WebhookConfig()
    dataplane: DataPlaneConfig = DataPlaneConfig()
    scale_out: ScaleOutConfig = ScaleOutConfig()

    # Not part of the file: where it came from and its hash (recorded with each event).
    source: str = Field(default="<memory>", exclude=True)
    hash: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        problems: list[FieldProblem] = []  # every mistake, not the first: `turnout config check` lists them all
        ids = [p.id for p in self.providers]
        for i, pid in enumerate(ids):
            if pid in ids[:i]:
                problems.append(
                    FieldProblem(
                        f"providers[{i}].id", f"duplicate provider id {pid!r}", "give each provider a unique id"
                    )
                )
        for p in self.providers:
            extra = CLOUD_EXTRAS.get(p.adapter)
            if p.adapter == "azure" and p.api_key is not None:
                extra = None  # an api-key needs nothing more; azure-identity is for Entra ID tokens
            if extra is not None and not _installed(extra[1]):
                raise FieldProblem(
                    f"providers.{p.id}.adapter",
                    f"adapter {p.adapter} needs {extra[1]}, which is not installed",
                    f"pip install 'turnout[{extra[0]}]'",
                )
            names = [m.name for m in p.models]
            for j, name in enumerate(names):
                if name in names[:j]:
                    problems.append(
                        FieldProblem(
                            f"providers.{p.id}.models[{j}].name", f"duplicate model {name!r}", "list each model once"
                        )
                    )
        known = self.target_keys()
        route_names = [r.name for r in self.routes]
        for i, r in enumerate(self.routes):
            problems.extend(_route_problems(r, i, known, route_names))
            if r.mode == "failover" and r.targets and all(t in known for t in r.targets):
                try:
                    self._check_route_kind(r)
                except FieldProblem as exc:
                    problems.append(exc)
        if problems:
            raise FieldProblems(problems)
        return self

    def _check_route_kind(self, r: RouteConfig) -> None:
        """A route serves one kind; an embedding route only one model (vectors of two models do not mix)."""
        models = [(t, self.model_of(t)) for t in r.targets]
        kinds = {m.kind for _, m in models if m is not None}
        if len(kinds) > 1:
            listed = ", ".join(f"{t} ({m.kind})" for t, m in models if m is not None)
            raise FieldProblem(
                f"routes.{r.name}.targets",
                f"route {r.name!r} mixes chat and embedding targets: {listed}",
                "give embedding models a route of their own",
            )
        if kinds != {"embedding"}:
            return
        for t, _ in models:
            p = self.provider(t.partition("/")[0])
            if p is not None and p.adapter not in ("openai", "gemini"):
                raise FieldProblem(
                    f"routes.{r.name}.targets",
                    f"embedding route {r.name!r}: {t} is on provider {p.id!r} (adapter {p.adapter}), "
                    "whose API has no embeddings",
                    "use an OpenAI-compatible or Gemini provider for embeddings",
                )
        families = {m.family_key() for _, m in models if m is not None}
        if len(families) > 1:
            listed = ", ".join(f"{t} ({m.family_key()})" for t, m in models if m is not None)
            raise FieldProblem(
                f"routes.{r.name}.targets",
                f"embedding route {r.name!r} mixes models: {listed}; embeddings of different models are not "
                "interchangeable",
                "list one model's targets only, or give models that are the same model one `family:` value",
            )

    def route_kind(self, name: str) -> str | None:
        """`chat` or `embedding` for a route or a provider/model target; None when unknown."""
        r = self.route(name)
        target = r.targets[0] if r is not None and r.targets else (None if r is not None else name)
        if target is None:
            return "chat"  # a panel route
        m = self.model_of(target) if "/" in target else None
        return m.kind if m is not None else None

    # -- lookups -------------------------------------------------------------------------------
    def target_keys(self) -> set[str]:
        return {f"{p.id}/{m.name}" for p in self.providers for m in p.models}

    def targets(self) -> list[TargetRef]:
        return [TargetRef(p.id, m.name) for p in self.providers for m in p.models]

    def provider(self, provider_id: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    def route(self, name: str) -> RouteConfig | None:
        return next((r for r in self.routes if r.name == name), None)

    def model_of(self, target: str | TargetRef) -> ModelConfig | None:
        ref = TargetRef.parse(target) if isinstance(target, str) else target
        p = self.provider(ref.provider)
        return p.model(ref.model) if p else None

    def probe_interval(self, kind: str) -> float:
        k = self.probes.kinds.get(kind)
        return k.interval if k and k.interval is not None else self.probes.interval

    def probe_timeout(self, kind: str) -> float:
        k = self.probes.kinds.get(kind)
        return k.timeout if k and k.timeout is not None else self.probes.timeout


def _route_problems(r: RouteConfig, i: int, known: set[str], route_names: list[str]) -> list[FieldProblem]:
    """The cross-field mistakes of route `r` (the i-th): its name, its targets, its panel."""
    out: list[FieldProblem] = []
    if r.name in route_names[:i]:
        out.append(
            FieldProblem(f"routes[{i}].name", f"duplicate route name {r.name!r}", "give each route a unique name")
        )
    if r.mode == "failover" and not r.targets:
        out.append(
            FieldProblem(
                f"routes.{r.name}.targets",
                "a failover route needs at least one target",
                "list targets as provider/model",
            )
        )
    for j, t in enumerate(r.targets):
        if t not in known:
            out.append(
                FieldProblem(
                    f"routes.{r.name}.targets[{j}]",
                    f"unknown target {t!r}; known: {', '.join(sorted(known)) or '(none)'}",
                    "define the model under its provider's models, or fix the name",
                )
            )
    if r.mode != "panel":
        return out
    if r.panel is None:
        out.append(
            FieldProblem(
                f"routes.{r.name}.panel", "mode: panel needs a panel section", "add panel: {from: [...], size: 3}"
            )
        )
        return out
    for ref in [*r.panel.from_, r.panel.judge, r.panel.synthesizer]:
        if ref is not None and ref not in known and ref not in route_names:
            out.append(
                FieldProblem(
                    f"routes.{r.name}.panel", f"unknown route or target {ref!r}", "name a route or provider/model"
                )
            )
    if r.panel.quorum > r.panel.size:
        out.append(
            FieldProblem(f"routes.{r.name}.panel.quorum", "quorum exceeds panel size", "lower quorum or raise size")
        )
    return out


def route_problems_of_raw(raw: Any) -> list[FieldProblem]:
    """The routes' cross-field mistakes (unknown targets...) read from a raw config mapping whose other parts may
    not validate: pydantic runs `Config._cross_checks` only once every field is valid, and a file with a typo in
    one field should still have all its unknown targets reported in the same run."""
    if not isinstance(raw, dict):
        return []
    raw_providers, raw_routes = raw.get("providers"), raw.get("routes")
    known: set[str] = set()
    for p in raw_providers if isinstance(raw_providers, list) else []:
        if isinstance(p, dict) and isinstance(p.get("id"), str) and isinstance(p.get("models"), list):
            known.update(
                f"{p['id']}/{m['name']}" for m in p["models"] if isinstance(m, dict) and isinstance(m.get("name"), str)
            )
    routes: list[RouteConfig | None] = []
    for r in raw_routes if isinstance(raw_routes, list) else []:
        try:
            routes.append(RouteConfig.model_validate(r))
        except ValidationError:  # its own field errors are reported by the full validation
            routes.append(None)
    names = [r.name if r is not None else "" for r in routes]
    out: list[FieldProblem] = []
    for i, r in enumerate(routes):
        if r is not None:
            out.extend(_route_problems(r, i, known, names))
    return out
