"""The last word in classification: what an HTTP status means when no machine field decided.

provider-semantics.md §6: match status + machine fields first, message text last, and always fall back on
the status. The fallback is shared by the three families; each family module decides its markers first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from adapters.headers import parse_retry_after, parse_should_retry, retry_hint_from_message
from adapters.wire.common import ErrorInfo, short_detail
from controlplane.domain import Classification, ErrorClass, Scope

__all__ = ["status_fallback", "make", "ok_or_bad", "classify_answer", "SCOPE_OF", "is_context_message"]

# Every "too long for this model" wording we know (OpenAI, DeepSeek, vLLM, Anthropic, Gemini, Together…).
_CONTEXT = re.compile(
    r"context[_ ]length|maximum context|context window|context limit|prompt is too long"
    r"|exceeds? the maximum number of tokens|input token count|too many tokens|max_tokens.{0,40}exceed"
    r"|exceed.{0,40}context",
    re.IGNORECASE,
)


def is_context_message(text: str) -> bool:
    """Message text saying the input (plus max_tokens) is longer than the model's context."""
    return bool(_CONTEXT.search(text))


# Default reach of a class (provider-semantics.md §6); a family overrides it where a marker says more
# (403 permission for one model → target; Gemini PerDay quota → target).
SCOPE_OF: dict[ErrorClass, Scope] = {
    ErrorClass.AUTH: Scope.CREDENTIAL,
    ErrorClass.QUOTA_EXHAUSTED: Scope.CREDENTIAL,
    ErrorClass.REGION_BLOCKED: Scope.EGRESS,
}


def status_fallback(status: int, info: ErrorInfo) -> tuple[ErrorClass, Scope | None]:
    """Class (and scope override) from the status alone; `info` only says whether a JSON error body came."""
    if info.html:
        return ErrorClass.BAD_RESPONSE, None  # CDN page (NET-9), whatever the status
    structured = info.json and info.has_error
    if status == 401:
        return ErrorClass.AUTH, None
    if status in (402, 412):
        return ErrorClass.QUOTA_EXHAUSTED, None
    if status == 403:
        return ErrorClass.AUTH, Scope.TARGET  # permission for this model
    if status == 404:
        return ErrorClass.MODEL_GONE, None
    if status == 408:
        return ErrorClass.TIMEOUT, None
    if status == 409:
        return ErrorClass.SERVER_ERROR, None
    if status == 429:
        return ErrorClass.RATE_LIMITED, None
    if status in (498, 529):
        return ErrorClass.OVERLOADED, None
    if status == 499:
        return ErrorClass.CLIENT_ERROR, None  # the client went away (Groq)
    if status == 502:
        # A provider that explains itself (OpenRouter: upstream down) is a server error; a bare gateway
        # answer from a proxy in between is a timeout.
        return (ErrorClass.SERVER_ERROR if structured else ErrorClass.TIMEOUT), None
    if status == 503:
        return (ErrorClass.OVERLOADED if structured else ErrorClass.TIMEOUT), None
    if status == 504:
        return ErrorClass.TIMEOUT, None
    if 400 <= status < 500:
        return ErrorClass.CLIENT_ERROR, None
    if status >= 500:
        return ErrorClass.SERVER_ERROR, None
    return ErrorClass.BAD_RESPONSE, None  # 1xx/3xx where an answer was expected


def make(
    error_class: ErrorClass,
    *,
    status: int | None,
    info: ErrorInfo,
    headers: Mapping[str, str],
    now: datetime,
    scope: Scope | None = None,
    code: str | None = None,
    context_exceeded: bool = False,
    retry_after_s: float | None = None,
    detail: str | None = None,
) -> Classification:
    """A Classification with retry hints read from headers (then the message), scrubbed detail and scope."""
    hint = retry_after_s
    if hint is None:
        hint = parse_retry_after(headers, now)
    if hint is None and error_class in (ErrorClass.RATE_LIMITED, ErrorClass.OVERLOADED) and info.message:
        hint = retry_hint_from_message(info.message)
    if detail is None:
        if info.html:
            detail = "HTML page instead of an API answer"
        elif info.empty:
            detail = "empty body"
        elif not info.json:
            detail = "body is not JSON"
        else:
            detail = info.detail()
    return Classification(
        error_class=error_class,
        scope=scope or SCOPE_OF.get(error_class, Scope.TARGET),
        status=status,
        code=code,
        retry_after_s=hint,
        should_retry=parse_should_retry(headers),
        context_exceeded=context_exceeded,
        detail=short_detail(detail),
    )


def ok_or_bad(status: int, body: bytes) -> Classification | None:
    """For 2xx answers: bad_response when the body is empty or an HTML page; None = look further."""
    if not body or not body.strip():
        return Classification(ErrorClass.BAD_RESPONSE, status=status, code="empty_body", detail="empty 200")
    if body.lstrip()[:1] == b"<":
        return Classification(
            ErrorClass.BAD_RESPONSE, status=status, code="html", detail="HTML page instead of an API answer"
        )
    return None


InfoClassifier = Callable[[int | None, ErrorInfo, Mapping[str, str], datetime], Classification]


def classify_answer(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None,
    by_info: InfoClassifier,
    ok_check: Callable[[int, bytes], Classification | None] | None = None,
) -> Classification:
    """Every family's `classify()`: a 2xx can still be garbage or carry an error object (classified by the
    family's `by_info` with status None, as in-stream errors are); `ok_check` may veto a clean 2xx."""
    now = now or datetime.now(UTC)
    if 200 <= status < 300:
        bad = ok_or_bad(status, body)
        if bad is not None:
            return bad
        info = ErrorInfo.from_body(body)
        if info.has_error:
            return by_info(None, info, headers, now)
        vetoed = ok_check(status, body) if ok_check is not None else None
        return vetoed or Classification(ErrorClass.OK, status=status)
    return by_info(status, ErrorInfo.from_body(body), headers, now)
