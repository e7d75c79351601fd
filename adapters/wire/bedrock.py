"""AWS Bedrock Converse wire constants: stop reasons, exception names and what each one means (§2.4)."""

from __future__ import annotations

from controlplane.domain import ErrorClass

__all__ = ["DEFAULT_MAX_TOKENS", "FINISH", "EXCEPTIONS", "AUTH_EXCEPTIONS", "REGION_TEXT", "GONE_TEXT", "GEO_PREFIXES"]

DEFAULT_MAX_TOKENS = 4096  # Anthropic models on Bedrock need maxTokens; OpenAI callers often omit it

# Converse stopReason -> OpenAI finish_reason
FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# The four signature / credential exceptions the AWS front door answers with (403, or 400 for an expired token).
AUTH_EXCEPTIONS = frozenset(
    {
        "unrecognizedclientexception",
        "invalidsignatureexception",
        "incompletesignatureexception",
        "missingauthenticationtokenexception",
        "signaturedoesnotmatch",
        "expiredtokenexception",
        "invalidclienttokenid",
    }
)

# Exception name (lower-cased: the stream spells them lowerCamelCase, HTTP answers UpperCamelCase) -> class.
EXCEPTIONS: dict[str, ErrorClass] = {
    "validationexception": ErrorClass.CLIENT_ERROR,  # but see REGION_TEXT / GONE_TEXT
    "accessdeniedexception": ErrorClass.AUTH,
    "resourcenotfoundexception": ErrorClass.MODEL_GONE,
    "throttlingexception": ErrorClass.RATE_LIMITED,
    "servicequotaexceededexception": ErrorClass.RATE_LIMITED,
    "modelnotreadyexception": ErrorClass.OVERLOADED,
    "serviceunavailableexception": ErrorClass.OVERLOADED,
    "modeltimeoutexception": ErrorClass.TIMEOUT,
    "modelerrorexception": ErrorClass.SERVER_ERROR,
    "modelstreamerrorexception": ErrorClass.SERVER_ERROR,
    "internalserverexception": ErrorClass.SERVER_ERROR,
    "conflictexception": ErrorClass.SERVER_ERROR,
}

# ValidationException texts that are not the caller's mistake.
REGION_TEXT = ("unsupported countries", "unsupported country", "not available in your region", "region, or territory")
GONE_TEXT = (
    "the provided model identifier is invalid",
    "model identifier is invalid",
    "end of its life",
    "reached the end of life",
    "is no longer supported",
)

# Cross-region inference profile prefixes: `eu.anthropic.claude-…` runs the base model `anthropic.claude-…`.
GEO_PREFIXES = ("eu.", "us.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.")
