"""OpenAI-compatible wire constants: error markers seen across OpenAI, Azure and the compatible hosts."""

from __future__ import annotations

__all__ = [
    "REGION",
    "AUTH",
    "QUOTA",
    "MODEL_GONE",
    "CONTEXT",
    "FILTER",
    "OVERLOAD",
    "RATE",
    "TIMEOUT",
    "SERVER",
    "DEFAULT_AZURE_API_VERSION",
]

# Markers are compared lower-cased against `type`, `code`, `status` and Azure `innererror.code`.
REGION = frozenset({"unsupported_country_region_territory"})
AUTH = frozenset({"invalid_api_key", "authentication_error", "invalid_authentication", "unauthenticated"})
QUOTA = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "billing_error",
        "billing_hard_limit_reached",
        "enforced_spend_limit_reached",
        "insufficient_balance",
    }
)
MODEL_GONE = frozenset({"model_not_found", "unknown_model", "deploymentnotfound", "model_not_available"})
CONTEXT = frozenset({"context_length_exceeded"})
FILTER = frozenset({"content_filter", "content_policy_violation", "responsibleaipolicyviolation", "moderation"})
OVERLOAD = frozenset(
    {"server_is_overloaded", "capacity_exceeded", "service_unavailable_error", "overloaded_error", "engine_overloaded"}
)
RATE = frozenset({"rate_limit_exceeded", "slow_down", "rate_limit_error", "requests", "tokens"})
TIMEOUT = frozenset({"timeout", "timeout_error", "request_timeout"})
SERVER = frozenset({"server_error", "api_error", "internal_error", "internal_server_error"})

DEFAULT_AZURE_API_VERSION = "2024-10-21"
