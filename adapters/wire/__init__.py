"""Wire-level pieces kept apart from adapter logic: body decoding, detail scrubbing, per-family markers."""

from __future__ import annotations

from adapters.wire.common import ErrorInfo, json_or_none, looks_like_html, scrub, short_detail

__all__ = ["ErrorInfo", "json_or_none", "looks_like_html", "scrub", "short_detail"]
