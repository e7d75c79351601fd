"""Gemini API (generateContent) wire constants."""

from __future__ import annotations

__all__ = ["FINISH", "FILTER_FINISH", "DAILY_RESET_TZ"]

# finishReason -> OpenAI finish_reason
FINISH: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}
FILTER_FINISH = frozenset(k for k, v in FINISH.items() if v == "content_filter")

# Daily quotas reportedly reset at midnight Pacific (provider-semantics.md §3, unconfirmed).
DAILY_RESET_TZ = "America/Los_Angeles"
