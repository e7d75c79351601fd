"""Anthropic Messages API wire constants."""

from __future__ import annotations

__all__ = ["API_VERSION", "DEFAULT_MAX_TOKENS", "FINISH", "SPEND_TEXT"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI callers often omit it

# stop_reason -> OpenAI finish_reason
FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# 400 invalid_request_error texts that mean the account cannot pay, not that the request is wrong.
SPEND_TEXT = ("spend limit", "usage limit", "credit balance is too low", "billing")
