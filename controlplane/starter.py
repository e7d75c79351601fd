"""A first `turnout.yaml` for the providers an operator names (`turnout init`): commented YAML text, not a dump,
so the file explains itself, with the environment variables it reads listed at the top.

Each provider is a `Starter`: where it is reached, which key it needs and two models by their exact API ids
(the same entries as examples/turnout.yaml; a test keeps the two in step). A provider whose adapter this build
does not have is refused with the list of the ones it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.config import ADAPTERS

__all__ = ["ALIASES", "Starter", "STARTERS", "UnknownProvider", "starter_config", "env_vars"]

ADMIN_TOKEN_VAR = "TURNOUT_ADMIN_TOKEN"


@dataclass(frozen=True, slots=True)
class StarterModel:
    name: str  # the provider's exact API id
    price_in: float | None = None  # USD per million tokens
    price_out: float | None = None
    context_window: int | None = None
    reasoning: bool = False

    def yaml(self) -> str:
        parts = [f"name: {self.name}"]
        if self.price_in is not None and self.price_out is not None:
            parts.append(f"price: {{input: {self.price_in}, output: {self.price_out}}}")
        if self.context_window is not None:
            parts.append(f"context_window: {self.context_window}")
        if self.reasoning:
            parts.append("reasoning: true")
        return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True, slots=True)
class Starter:
    id: str
    adapter: str
    base_url: str | None  # None: the adapter builds its endpoints from region (and project): the clouds
    comment: str
    models: tuple[StarterModel, ...]
    key_var: str | None = None  # the environment variable holding the API key; None: no key (local servers)
    settings: tuple[str, ...] = ()  # further YAML lines of the provider entry (the clouds' credentials, project)
    setting_vars: tuple[str, ...] = ()  # the environment variables those lines read
    flavor: str | None = None
    region: str = "us"
    jurisdiction: str = "us"
    zero_retention: bool = False
    status_page: str | None = None
    status_components: tuple[str, ...] = field(default=())

    def yaml(self) -> str:
        lines = [f"  - id: {self.id:<34}# {self.comment}", f"    adapter: {self.adapter}"]
        if self.flavor:
            lines.append(f"    flavor: {self.flavor}")
        if self.base_url is not None:
            lines.append(f"    base_url: {self.base_url}")
        lines += [f"    {s}" for s in self.settings]
        if self.key_var:
            lines.append(f'    api_key: "${{{self.key_var}}}"')
        lines += [f"    region: {self.region}", f"    jurisdiction: {self.jurisdiction}"]
        if self.zero_retention:
            lines.append("    zero_retention: true")
        if self.status_page:
            lines.append(f"    status_page: {self.status_page}")
        if self.status_components:
            lines.append("    status_components: [" + ", ".join(f'"{c}"' for c in self.status_components) + "]")
        lines.append("    models:")
        lines += [f"      - {m.yaml()}" for m in self.models]
        return "\n".join(lines)


_M = StarterModel
STARTERS: dict[str, Starter] = {
    s.id: s
    for s in (
        Starter(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            "OpenAI",
            (_M("gpt-5.5", 1.25, 10.0, 400000, True), _M("gpt-4.1-mini", 0.40, 1.60, 1000000)),
            key_var="OPENAI_API_KEY",
            status_page="https://status.openai.com/api/v2/summary.json",
            status_components=("API", "Chat Completions"),
        ),
        Starter(
            "anthropic",
            "anthropic",
            "https://api.anthropic.com",
            "Anthropic (Messages API)",
            (_M("claude-opus-4-1-20250805", 15.0, 75.0, 200000), _M("claude-sonnet-4-5-20250929", 3.0, 15.0, 200000)),
            key_var="ANTHROPIC_API_KEY",
            status_page="https://status.claude.com/api/v2/summary.json",
            status_components=("Claude API (api.anthropic.com)",),
        ),
        Starter(
            "google",
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "Gemini API (AI Studio key)",
            (_M("gemini-3-pro-preview", 2.0, 12.0, 1048576, True), _M("gemini-2.5-flash", 0.30, 2.50, 1048576)),
            key_var="GEMINI_API_KEY",
        ),
        Starter(
            "deepseek",
            "openai",
            "https://api.deepseek.com",
            "DeepSeek (OpenAI-compatible)",
            (_M("deepseek-chat", 0.27, 1.10, 65536), _M("deepseek-reasoner", 0.55, 2.19, 65536, True)),
            key_var="DEEPSEEK_API_KEY",
            flavor="deepseek",
            region="cn",
            jurisdiction="cn",
            status_page="https://status.deepseek.com/api/v2/summary.json",
        ),
        Starter(
            "mistral",
            "openai",
            "https://api.mistral.ai/v1",
            "Mistral (OpenAI-compatible)",
            (_M("mistral-large-latest", 2.0, 6.0, 128000), _M("mistral-small-latest", 0.10, 0.30, 128000)),
            key_var="MISTRAL_API_KEY",
            region="eu",
            jurisdiction="eu",
        ),
        Starter(
            "openrouter",
            "openai",
            "https://openrouter.ai/api/v1",
            "OpenRouter (model ids are author/slug)",
            (
                _M("anthropic/claude-sonnet-4", 3.0, 15.0, 200000),
                _M("meta-llama/llama-3.3-70b-instruct", 0.13, 0.40, 131072),
            ),
            key_var="OPENROUTER_API_KEY",
            flavor="openrouter",
        ),
        Starter(
            "local-vllm",
            "openai",
            "http://127.0.0.1:8000/v1",
            "self-hosted vLLM: free, never leaves the building",
            (_M("meta-llama/Llama-3.1-8B-Instruct", context_window=8192),),
            flavor="vllm",
            region="local",
            jurisdiction="self",
            zero_retention=True,
        ),
        Starter(
            "local-ollama",
            "openai",
            "http://127.0.0.1:11434/v1",
            "self-hosted Ollama",
            (_M("llama3.1", context_window=8192),),
            flavor="ollama",
            region="local",
            jurisdiction="self",
            zero_retention=True,
        ),
        Starter(
            "bedrock-eu",
            "bedrock",
            None,
            "AWS Bedrock in the EU (pip install 'turnout[aws]'; docs/bedrock.md)",
            (_M("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", 3.0, 15.0, 200000),),
            settings=(
                'aws_access_key_id: "${AWS_ACCESS_KEY_ID}"          # leave both keys out to use the default chain',
                'aws_secret_access_key: "${AWS_SECRET_ACCESS_KEY}"',
            ),
            setting_vars=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            region="eu-central-1",
            jurisdiction="eu",
        ),
        Starter(
            "vertex-eu",
            "vertex",
            None,
            "Google Vertex AI in the EU (pip install 'turnout[gcp]'; docs/vertex.md)",
            (_M("claude-sonnet-4-5@20250929", 3.3, 16.5, 200000), _M("gemini-2.5-flash", 0.30, 2.50, 1048576)),
            settings=(
                'project: "${GOOGLE_CLOUD_PROJECT}"                 # tokens from application default credentials',
            ),
            setting_vars=("GOOGLE_CLOUD_PROJECT",),
            region="europe-west4",
            jurisdiction="eu",
        ),
        Starter(
            "azure-sweden",
            "azure",
            "https://${AZURE_OPENAI_RESOURCE}.openai.azure.com",
            "Azure OpenAI in Sweden Central (docs/azure.md); models are deployment names",
            (_M("gpt-4o-eu", 2.5, 10.0, 128000),),
            key_var="AZURE_OPENAI_API_KEY",
            settings=('api_version: "2024-10-21"',),
            setting_vars=("AZURE_OPENAI_RESOURCE",),
            region="swedencentral",
            jurisdiction="eu",
        ),
    )
}
# Names an operator may type for a starter (the adapter's or the product's name).
ALIASES = {
    "gemini": "google",
    "vllm": "local-vllm",
    "ollama": "local-ollama",
    "bedrock": "bedrock-eu",
    "vertex": "vertex-eu",
    "azure": "azure-sweden",
}


class UnknownProvider(ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(sorted({*STARTERS, *ALIASES}))
        super().__init__(f"no starter for provider {name!r}; known: {known}")


def _pick(names: list[str]) -> list[Starter]:
    out: list[Starter] = []
    for raw in names:
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        starter = STARTERS.get(name)
        if starter is None or starter.adapter not in ADAPTERS:
            raise UnknownProvider(raw.strip())
        if starter not in out:
            out.append(starter)
    return out


def env_vars(names: list[str]) -> list[str]:
    """The environment variables the starter config for `names` reads, in file order."""
    out = [ADMIN_TOKEN_VAR]
    for s in _pick(names):
        out += [v for v in (*s.setting_vars, s.key_var) if v and v not in out]
    return out


def starter_config(names: list[str]) -> str:
    """The text of a commented turnout.yaml for the providers `names`, in that order (raises UnknownProvider)."""
    starters = _pick(names)
    if not starters:
        raise UnknownProvider("")
    exports = "\n".join(f"#   export {v}=…" for v in env_vars(names))
    first_models = ", ".join(f"{s.id}/{s.models[0].name}" for s in starters)
    return f"""\
# Turnout config written by `turnout init` for: {", ".join(s.id for s in starters)}.
# Keys come from the environment, never from this file. Set these before `turnout serve`:
{exports}
# then check the file (every problem is listed at once) and start:
#   turnout config check turnout.yaml
#   turnout serve -c turnout.yaml
# Reference of every field: docs/configuration.md. Model names are the providers' exact API ids; prices are USD
# per million tokens, for cost accounting only: check the provider's current list.
server:
  data:    {{host: 127.0.0.1, port: 8700}}   # OpenAI-compatible endpoint for your clients: http://127.0.0.1:8700/v1
  control: {{host: 127.0.0.1, port: 8701}}   # status API, webhooks API, /metrics, status page
database:
  url: "sqlite:///turnout.db"              # postgresql+psycopg://user@host/db for scale-out (docs/scale-out.md)
auth:
  public_read: true                        # reads need no token; changes need the admin token
  tokens: [{{token: "${{{ADMIN_TOKEN_VAR}}}", scope: admin, name: ops}}]

providers:
{chr(10).join(s.yaml() for s in starters)}

routes:
  - name: default                          # clients send model: default; tried in ranked order, failing over
    targets: [{first_models}]

probes:
  interval: 15s
  kinds:
    catalogue:    {{interval: 60s}}           # free: auth, region, model withdrawn
    count_tokens: {{interval: 2m}}            # free on Anthropic / Gemini: exercises the inference path
    completion:   {{interval: 5m}}            # paid: latency, TTFT, tokens/s (capped per provider per day)
    status_page:  {{interval: 2m}}            # provider-level hint; never opens or withdraws
    health:       {{interval: 15s}}           # local servers' health endpoints
"""
