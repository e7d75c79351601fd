"""Reading what providers say in headers about time and capacity: retry hints, resets and headroom.

Retry hints (provider-semantics.md §2, §3): `retry-after-ms`, then `retry-after` (seconds or an HTTP date),
then Gemini's `RetryInfo.retryDelay` in the body, and `x-should-retry: true|false`.
Headroom (§3): for each dimension d (requests, tokens, input_tokens, output_tokens) `remaining_d / limit_d`,
skipping placeholders (`-1`, limit <= 0); the headroom is the minimum, reported with its binding dimension.
Resets are relative Go durations (`6m0s`, `12ms`; OpenAI, Groq, Azure) or RFC 3339 instants (Anthropic);
a reading whose reset has passed is stale and counts as full.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from controlplane.domain import Headroom

__all__ = [
    "lower_headers",
    "LowerHeaders",
    "parse_go_duration",
    "parse_rfc3339",
    "parse_retry_after",
    "parse_should_retry",
    "retry_hint_from_message",
    "headroom_from_headers",
    "HeaderFamily",
]

HeaderFamily = Literal["openai", "anthropic"]

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# "Please try again in 6ms." (OpenAI), "Please retry after 6 seconds." (Azure), "retry in 26.3s" (Gemini text)
_MSG_HINT = re.compile(
    r"(?:try again|retry)(?: after| in)\s+((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+|\d+(?:\.\d+)?)\s*(seconds?|secs?)?",
    re.IGNORECASE,
)
_DIMENSIONS = {
    "openai": ("requests", "tokens"),
    "anthropic": ("requests", "tokens", "input-tokens", "output-tokens"),
}
_PREFIX = {"openai": "x-ratelimit-", "anthropic": "anthropic-ratelimit-"}


class LowerHeaders(dict[str, str]):
    """Headers whose names are already lower-cased (the data plane's transport builds these): read as they are."""


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased (aiohttp's CIMultiDict already ignores case; plain dicts in tests do not)."""
    if isinstance(headers, LowerHeaders):
        return headers  # read on every proxied answer: no copy when there is nothing to lower
    return {str(k).lower(): str(v) for k, v in headers.items()}


def parse_go_duration(text: str | None) -> float | None:
    """Seconds from a Go duration (`6m0s`, `12ms`, `1h2m3.5s`) or a bare number of seconds; None if unreadable."""
    if text is None:
        return None
    t = text.strip().lower()
    if not t:
        return None
    try:
        value = float(t)
    except ValueError:
        pass
    else:
        return value if value >= 0 else None
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(t):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(t) and pos > 0 else None


def parse_rfc3339(text: str | None) -> datetime | None:
    """An aware UTC datetime from an RFC 3339 instant (`2026-01-01T00:00:12Z`); None if unreadable."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or HTTP date); None when absent."""
    h = lower_headers(headers)
    ms = h.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms.strip()) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    ra = h.get("retry-after")
    if ra is None:
        return None
    ra = ra.strip()
    try:
        value = float(ra)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(ra)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_should_retry(headers: Mapping[str, str]) -> bool | None:
    """`x-should-retry: true|false` as a bool; None when absent or unreadable."""
    value = lower_headers(headers).get("x-should-retry")
    if value is None:
        return None
    v = value.strip().lower()
    return True if v == "true" else False if v == "false" else None


def retry_hint_from_message(message: str) -> float | None:
    """Last resort: the wait a provider wrote in prose ("Please try again in 6ms", "retry after 6 seconds")."""
    m = _MSG_HINT.search(message)
    if not m:
        return None
    amount = m.group(1)
    return parse_go_duration(amount)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None


def headroom_from_headers(headers: Mapping[str, str], now: datetime, family: HeaderFamily) -> Headroom | None:
    """Headroom = min over dimensions of remaining/limit, with the binding dimension; None when no dimension is readable."""
    h = lower_headers(headers)
    best: tuple[float, str, float | None] | None = None
    remaining_by_dim: dict[str, float] = {}
    for name, limit_key, remaining_key, reset_key in _KEYS[family]:
        limit = _number(h.get(limit_key))
        remaining = _number(h.get(remaining_key))
        if remaining is None or remaining < 0:  # -1 placeholders (Azure) mean unknown
            continue
        reset_s = _reset_seconds(h.get(reset_key), now, family)
        if limit is None or limit <= 0:
            # Azure sometimes sends only `remaining`: no ratio, but still worth reporting what is left.
            remaining_by_dim[name] = remaining
            continue
        frac = max(0.0, min(1.0, remaining / limit))
        if reset_s is not None and reset_s <= 0 and family == "anthropic":
            frac = 1.0  # the window already reset: the reading is stale
        remaining_by_dim[name] = remaining
        if best is None or frac < best[0]:
            best = (frac, name, reset_s)
    if best is None:
        return None
    ratio, dim_name, reset_after = best
    return Headroom(
        ratio=ratio,
        dimension=dim_name,
        reset_after_s=reset_after,
        remaining_tokens=remaining_by_dim.get("tokens"),
        remaining_requests=remaining_by_dim.get("requests"),
    )


def _key(family: HeaderFamily, field: str, dim: str) -> str:
    # OpenAI: x-ratelimit-limit-requests; Anthropic: anthropic-ratelimit-requests-limit
    prefix = _PREFIX[family]
    return f"{prefix}{field}-{dim}" if family == "openai" else f"{prefix}{dim}-{field}"


# Per family, per dimension: (name, limit header, remaining header, reset header), built once (read per answer).
_KEYS: dict[HeaderFamily, list[tuple[str, str, str, str]]] = {
    family: [
        (dim.replace("-", "_"), _key(family, "limit", dim), _key(family, "remaining", dim), _key(family, "reset", dim))
        for dim in _DIMENSIONS[family]
    ]
    for family in ("openai", "anthropic")
}


def _reset_seconds(value: str | None, now: datetime, family: HeaderFamily) -> float | None:
    if value is None:
        return None
    if family == "anthropic":
        when = parse_rfc3339(value)
        return None if when is None else (when - now).total_seconds()
    return parse_go_duration(value)
