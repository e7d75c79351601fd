"""Headroom, reset and retry-hint parsing per header family (provider-semantics.md §3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.headers import (
    headroom_from_headers,
    parse_go_duration,
    parse_retry_after,
    parse_rfc3339,
    parse_should_retry,
    retry_hint_from_message,
)
from adapters.registry import get_adapter

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("1s", 1.0),
        ("1h2m3.5s", 3723.5),
        ("2", 2.0),
        ("0.5", 0.5),
        ("150us", 0.00015),
        ("0s", 0.0),
    ],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "6x", "-1", "1s2", None])
def test_unreadable_go_durations_are_none(text: str | None) -> None:
    assert parse_go_duration(text) is None


def test_rfc3339_instants_parse_to_utc() -> None:
    assert parse_rfc3339("2026-01-01T12:00:12Z") == datetime(2026, 1, 1, 12, 0, 12, tzinfo=UTC)
    assert parse_rfc3339("2026-01-01T13:00:12+01:00") == datetime(2026, 1, 1, 12, 0, 12, tzinfo=UTC)
    assert parse_rfc3339("tomorrow") is None


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 11:00:00 GMT"}, NOW) == 0.0


def test_should_retry_and_message_hints() -> None:
    assert parse_should_retry({"X-Should-Retry": "false"}) is False
    assert parse_should_retry({}) is None
    assert retry_hint_from_message("Please try again in 1m30s.") == 90.0
    assert retry_hint_from_message("no hint here") is None


def test_openai_headroom_takes_the_binding_dimension_with_go_reset() -> None:
    h = headroom_from_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "450",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "3000",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        NOW,
        "openai",
    )
    assert h is not None
    assert h.ratio == pytest.approx(0.1)
    assert h.dimension == "tokens"
    assert h.reset_after_s == 360.0
    assert (h.remaining_tokens, h.remaining_requests) == (3000.0, 450.0)


def test_oa_hdr_draining_capacity_reaches_zero() -> None:
    h = get_adapter("openai").headroom(
        {"X-RateLimit-Limit-Tokens": "1000", "X-RateLimit-Remaining-Tokens": "0", "X-RateLimit-Reset-Tokens": "6m0s"},
        NOW,
    )
    assert h is not None and h.ratio == 0.0 and h.reset_after_s == 360.0


def test_azure_placeholders_mean_unknown() -> None:
    # AZ-NEG: -1 placeholders and a 0 reset say nothing about capacity
    assert (
        get_adapter("openai").headroom(
            {"x-ratelimit-limit-tokens": "-1", "x-ratelimit-remaining-tokens": "-1", "x-ratelimit-reset-tokens": "0"},
            NOW,
        )
        is None
    )


def test_azure_remaining_without_limit_gives_no_ratio() -> None:
    assert headroom_from_headers({"x-ratelimit-remaining-requests": "10"}, NOW, "openai") is None


def test_anthropic_headroom_covers_input_and_output_tokens_with_rfc3339_reset() -> None:
    h = get_adapter("anthropic").headroom(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "40",
            "anthropic-ratelimit-requests-reset": "2026-01-01T12:00:12Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-input-tokens-reset": "2026-01-01T12:00:30Z",
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "800",
            "anthropic-ratelimit-output-tokens-reset": "2026-01-01T12:00:45Z",
        },
        NOW,
    )
    assert h is not None
    assert h.dimension == "output_tokens"
    assert h.ratio == pytest.approx(0.1)
    assert h.reset_after_s == pytest.approx(45.0)
    assert h.remaining_requests == 40.0


def test_anthropic_reading_past_its_reset_is_stale_and_counts_as_full() -> None:
    h = get_adapter("anthropic").headroom(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-01-01T11:59:00Z",
        },
        NOW,
    )
    assert h is not None and h.ratio == 1.0


def test_an_429_headers_give_zero_headroom_until_reset() -> None:
    h = get_adapter("anthropic").headroom(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2026-01-01T12:00:12Z",
        },
        NOW,
    )
    assert h is not None and h.ratio == 0.0 and h.reset_after_s == pytest.approx(12.0)


def test_gemini_and_headerless_answers_have_no_headroom() -> None:
    assert get_adapter("gemini").headroom({"x-ratelimit-remaining-tokens": "5"}, NOW) is None
    assert get_adapter("openai").headroom({}, NOW) is None
    assert get_adapter("anthropic").headroom({"anthropic-ratelimit-requests-limit": "x"}, NOW) is None
