"""Reading the OpenAI chat request shape, for the families that translate it (Anthropic, Gemini).

Content may be a string or a list of parts (`text`, `image_url`); tool call arguments are JSON strings.
Bad caller input raises ValueError naming the field, so the data plane can answer 400 with it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = ["as_list", "content_parts", "data_url", "json_args", "max_tokens", "stop_list"]

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.DOTALL)


def content_parts(content: Any, where: str) -> list[dict[str, str]]:
    """Normalised parts: `{"type":"text","text"}` or `{"type":"image","url"}`; None/"" gives no parts."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ValueError(f"{where}.content: must be a string or a list of parts")
    out: list[dict[str, str]] = []
    for k, part in enumerate(content):
        if isinstance(part, str):
            out.append({"type": "text", "text": part})
            continue
        if not isinstance(part, dict):
            raise ValueError(f"{where}.content[{k}]: must be an object")
        kind = part.get("type")
        if kind in ("text", "input_text"):
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            if not isinstance(url, str) or not url:
                raise ValueError(f"{where}.content[{k}].image_url.url: missing")
            out.append({"type": "image", "url": url})
        else:
            raise ValueError(f"{where}.content[{k}].type: unsupported part type {kind!r}")
    return out


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:` URL; None for other URLs."""
    m = _DATA_URL.match(url)
    return (m.group(1), m.group(2)) if m else None


def json_args(arguments: Any, where: str) -> dict[str, Any]:
    """Tool call arguments (a JSON object as a string, or already an object) as a dict."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{where}: not valid JSON") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a JSON object")
    return value


def stop_list(stop: Any) -> list[str] | None:
    """OpenAI `stop` (string or list) as a list; None when unset."""
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise ValueError("stop: must be a string or a list of strings")


def as_list(value: Any, where: str) -> list[Any]:
    """A list field that may be absent (None → [])."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where}: must be a list")
    return value


def max_tokens(body: Any, default: int | None) -> int | None:
    """`max_completion_tokens` or `max_tokens` as a positive int (reasoning models use the former)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        return value
    return default
