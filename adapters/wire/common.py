"""Decoding an upstream body just enough to classify it, and scrubbing what we repeat of it.

Every adapter reads provider bodies that may be anything: JSON of the family's shape, another family's
shape (OpenAI-compatible hosts vary), an HTML page from a CDN, a truncated fragment or nothing.
`ErrorInfo.from_body` never raises; it extracts the machine fields (type, code, status, reason) that
classification looks at first, and keeps the message text for the last-resort checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["ErrorInfo", "json_or_none", "looks_like_html", "obj", "items", "scrub", "short_detail", "DETAIL_MAX"]

DETAIL_MAX = 200

# Things that look like credentials. Providers sometimes echo (part of) the key back
# ("Incorrect API key provided: sk-abc***xyz"); none of it may reach logs, events or API output.
_SECRETISH = re.compile(
    r"\b(?:sk|pk|rk|sess|org|proj|gsk|xai|key)[-_][-_A-Za-z0-9.*]{6,}"
    r"|\bAIza[-_A-Za-z0-9]{6,}|\bya29\.[-_A-Za-z0-9.]+|\bBearer\s+\S+"
    r"|\b[A-Za-z0-9_\-]*\d[A-Za-z0-9_\-]*[A-Za-z][A-Za-z0-9_\-]{30,}",
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def scrub(text: str) -> str:
    """Remove credential-looking tokens and control characters from text we are about to repeat."""
    return _CONTROL.sub(" ", _SECRETISH.sub("[redacted]", text)).strip()


def short_detail(text: str, limit: int = DETAIL_MAX) -> str:
    """A scrubbed, one-line detail no longer than `limit` characters."""
    clean = scrub(text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def json_or_none(body: bytes | str) -> Any:
    """Parsed JSON, or None when the body is not (complete) JSON."""
    try:
        return orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None


def obj(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: for reading optional nested fields."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    """`value` when it is a JSON array, else an empty one: for reading optional lists a provider may send as
    anything (`"errors": true` must not end a classification with a TypeError)."""
    return value if isinstance(value, list) else []


def looks_like_html(body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")) or b"<html" in head


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None


@dataclass(slots=True)
class ErrorInfo:
    """The fields of an error body that classification reads, across every family's shape.

    OA `{"error":{"message","type","param","code"}}`, AN `{"type":"error","error":{"type","message"}}`,
    GG `{"error":{"code":<int>,"message","status","details":[…]}}`, MI `{"object":"error",…}`,
    OR `{"error":{"code":<int>,"message","metadata"}}`, Ollama native / xAI `{"error":"…"}`.
    """

    json: bool = False  # the body parsed as JSON
    html: bool = False
    empty: bool = False
    has_error: bool = False  # an error object (or string) was found
    type: str | None = None  # OA/MI/AN `type`
    code: str | None = None  # OA/MI `code` (as text), GG/OR numeric code as text
    status: str | None = None  # GG RPC status
    message: str = ""
    param: str | None = None
    top_type: str | None = None  # AN top-level `type` ("error"); absent on the geo-block edge body
    reasons: list[str] = field(default_factory=list)  # GG ErrorInfo.reason, Vertex errors[].reason
    quota_ids: list[str] = field(default_factory=list)  # GG QuotaFailure violations[].quotaId
    retry_delay: str | None = None  # GG RetryInfo.retryDelay ("26s")
    inner_code: str | None = None  # Azure innererror.code, AN error.details.error_code
    metadata: dict[str, Any] = field(default_factory=dict)  # OpenRouter
    raw: Any = None  # the parsed JSON document

    @classmethod
    def from_body(cls, body: bytes) -> ErrorInfo:
        info = cls()
        if not body or not body.strip():
            info.empty = True
            return info
        doc = json_or_none(body)
        if doc is None:
            info.html = looks_like_html(body)
            return info
        info.json, info.raw = True, doc
        info.fill(doc)
        return info

    @classmethod
    def from_doc(cls, doc: Any) -> ErrorInfo:
        info = cls(json=True, raw=doc)
        info.fill(doc)
        return info

    def fill(self, doc: Any) -> None:
        if isinstance(doc, list) and doc and isinstance(doc[0], dict):
            doc = doc[0]  # Gemini's non-SSE stream answers a JSON array
        if not isinstance(doc, dict):
            return
        self.top_type = _text(doc.get("type"))
        err = doc.get("error")
        if isinstance(err, str):  # Ollama native, xAI `{"code","error"}`
            self.has_error, self.message = True, err
            self.code = _text(doc.get("code"))
            return
        if doc.get("object") == "error":  # MI body (Mistral, older vLLM): fields at top level
            err = doc
        if not isinstance(err, dict):
            return
        self.has_error = True
        self.type = _text(err.get("type"))
        self.code = _text(err.get("code"))
        self.status = _text(err.get("status"))
        self.message = _text(err.get("message")) or ""
        self.param = _text(err.get("param"))
        meta = err.get("metadata")
        if isinstance(meta, dict):
            self.metadata = meta
        inner = err.get("innererror")
        if isinstance(inner, dict):
            self.inner_code = _text(inner.get("code"))
        details = err.get("details")
        if isinstance(details, dict):  # Anthropic spend cap: error.details.error_code
            self.inner_code = _text(details.get("error_code")) or self.inner_code
        elif isinstance(details, list):
            for d in details:
                if not isinstance(d, dict):
                    continue
                if reason := _text(d.get("reason")):
                    self.reasons.append(reason)
                for v in items(d.get("violations")):
                    if isinstance(v, dict) and (qid := _text(v.get("quotaId"))):
                        self.quota_ids.append(qid)
                if delay := _text(d.get("retryDelay")):
                    self.retry_delay = delay
        for e in items(err.get("errors")):  # Vertex
            if isinstance(e, dict) and (reason := _text(e.get("reason"))):
                self.reasons.append(reason)

    def ordered_markers(self) -> list[str]:
        """Lower-cased markers, most specific first: code, inner code, type, status, reasons."""
        out = [m.lower() for m in (self.code, self.inner_code, self.type, self.status) if m]
        out.extend(r.lower() for r in self.reasons)
        return out

    def markers(self) -> set[str]:
        """Lower-cased machine markers (type, code, status, reasons, inner code) for set lookups."""
        out = {m.lower() for m in (self.type, self.code, self.status, self.inner_code) if m}
        out.update(r.lower() for r in self.reasons)
        return out

    def lower_message(self) -> str:
        return self.message.lower()

    def detail(self, fallback: str = "") -> str:
        parts = [p for p in (self.status or self.type, self.code) if p]
        head = "/".join(dict.fromkeys(parts))
        text = self.message or fallback
        return short_detail(f"{head}: {text}" if head and text else head or text)
