"""OpenTelemetry traces, opt-in through the standard `OTEL_*` environment variables, exported over OTLP/HTTP.

On when `OTEL_TRACES_EXPORTER=otlp` or an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Everything
else (headers, timeout, sampler, batch sizes, resource attributes, service name) is read by the OpenTelemetry
SDK from its own variables. Off, the only cost is the `tracer() is None` test at each call site: no SDK is
imported, no span or context object is made.

Span names and attributes follow the OpenTelemetry GenAI semantic conventions (`gen_ai.*`, `error.type`), plus
Turnout's own under `turnout.*`. The data plane makes one SERVER span per client request (continuing the client's
W3C `traceparent`) and one CLIENT span per upstream attempt (whose `traceparent` goes to the provider); probes and
webhook deliveries get a span each. Prompts, answers and keys are never attributes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from controlplane.version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "enabled_by",
    "setup_tracing",
    "shutdown_tracing",
    "tracer",
    "server_span",
    "client_span",
    "internal_span",
    "inject",
    "failed",
    "genai_provider",
]

log = logging.getLogger("turnout.tracing")

_tracer: Tracer | None = None  # None: tracing is off, and every call site does nothing more than test this
_provider: TracerProvider | None = None


def enabled_by(env: Mapping[str, str]) -> bool:
    """Whether these environment variables ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("none", ""):
        return exporter == "" and bool(
            env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
    if exporter != "otlp":
        log.warning("tracing: OTEL_TRACES_EXPORTER=%s is not supported (otlp or none); traces stay off", exporter)
        return False
    return True


def setup_tracing(service_name: str = "turnout", env: Mapping[str, str] | None = None) -> bool:
    """Start exporting traces when the environment asks for it; True when tracing is now on."""
    global _tracer, _provider
    env = os.environ if env is None else env
    if not enabled_by(env):
        return False
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    )
    if protocol != "http/protobuf":
        log.warning("tracing: OTLP protocol %s is not supported (http/protobuf); traces stay off", protocol)
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("tracing: OTEL_* asks for traces but the SDK is missing: pip install 'turnout[tracing]'")
        return False
    attributes: dict[str, Any] = {"service.version": __version__}
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = service_name  # the SDK's own default would be "unknown_service"
    shutdown_tracing()
    provider = TracerProvider(resource=Resource.create(attributes))  # sampler: OTEL_TRACES_SAMPLER(_ARG)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint, headers: OTEL_EXPORTER_OTLP_*
    _provider, _tracer = provider, provider.get_tracer("turnout", __version__)
    log.info("tracing: exporting spans over OTLP/HTTP")
    return True


def shutdown_tracing() -> None:
    """Export what is buffered and stop (serve's shutdown; tests between runs)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def tracer() -> Tracer | None:
    return _tracer


def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> Span:
    """A SERVER span continuing the caller's W3C `traceparent` (a new trace when there is none or it is bad)."""
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    return _tracer.start_span(name, context=extract(headers), kind=SpanKind.SERVER, attributes=attributes)


def client_span(name: str, parent: Span | None, attributes: Mapping[str, Any]) -> Span:
    """A CLIENT span, the child of `parent` (or of the current span when None)."""
    from opentelemetry.trace import SpanKind, set_span_in_context

    assert _tracer is not None
    context = set_span_in_context(parent) if parent is not None else None
    return _tracer.start_span(name, context=context, kind=SpanKind.CLIENT, attributes=attributes)


@contextmanager
def internal_span(name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    with _tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, attributes=attributes) as span:
        yield span


def inject(span: Span, headers: MutableMapping[str, str]) -> None:
    """Put `span`'s `traceparent` (and `tracestate`) into outgoing request headers."""
    from opentelemetry.propagate import inject as _inject
    from opentelemetry.trace import set_span_in_context

    _inject(headers, context=set_span_in_context(span))


def failed(span: Span, error_type: str, description: str = "") -> None:
    """Mark `span` failed with `error.type` (Turnout's error class, or an outcome such as `exhausted`)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description or error_type))


# gen_ai.provider.name: the conventions' well-known values where one fits, else the flavor or adapter name.
_BY_FLAVOR = {
    "azure": "azure.ai.openai",
    "deepseek": "deepseek",
    "groq": "groq",
    "xai": "x_ai",
    "mistral": "mistral_ai",
    "openrouter": "openrouter",
    "together": "together_ai",
    "fireworks": "fireworks_ai",
}
_BY_ADAPTER = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}


def genai_provider(adapter: str, flavor: str | None, base_url: str) -> str:
    if flavor:
        return _BY_FLAVOR.get(flavor, flavor)
    if adapter == "openai" and "mistral.ai" in base_url:
        return "mistral_ai"
    return _BY_ADAPTER.get(adapter, adapter)
