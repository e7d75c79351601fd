"""The Anthropic Messages API shape ↔ the OpenAI chat shape every adapter speaks.

A Messages request (system, alternating turns with text, image, tool_use and tool_result blocks,
`stop_sequences`, tools and `tool_choice`) becomes a chat body for targets that are not Anthropic; a chat
completion comes back as a `message`. Errors are written in Anthropic's shape. Bad caller input raises
ValueError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from controlplane.domain import ErrorClass

__all__ = [
    "to_chat_body",
    "from_chat_completion",
    "message_usage",
    "error_body",
    "error_type",
    "STOP_REASON",
]

# chat finish_reason → Messages stop_reason
STOP_REASON: dict[str | None, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    None: "end_turn",
}
# HTTP status → Anthropic error.type (https://docs.anthropic.com errors page: the same table)
_STATUS_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_CLASS_TYPE = {
    ErrorClass.RATE_LIMITED: "rate_limit_error",
    ErrorClass.OVERLOADED: "overloaded_error",
    ErrorClass.TIMEOUT: "timeout_error",
    ErrorClass.AUTH: "authentication_error",
    ErrorClass.QUOTA_EXHAUSTED: "billing_error",
    ErrorClass.CLIENT_ERROR: "invalid_request_error",
    ErrorClass.MODEL_GONE: "not_found_error",
}


def error_type(status: int, error_class: ErrorClass | None = None) -> str:
    """Anthropic's error.type for an answer: by error class when one is known, else by status."""
    if error_class is not None and error_class in _CLASS_TYPE:
        return _CLASS_TYPE[error_class]
    return _STATUS_TYPE.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(kind: str, message: str, **extra: Any) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message, **extra}})


def _text(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise ValueError(f"{where}.text: must be a string")
    return text


def _image(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if not isinstance(src, dict):
        raise ValueError(f"{where}.source: required")
    if src.get("type") == "base64":
        url = f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
    elif src.get("type") == "url" and isinstance(src.get("url"), str):
        url = src["url"]
    else:
        raise ValueError(f"{where}.source.type: use base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ValueError(f"{where}.content: must be a string or a list of content blocks")
    for k, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ValueError(f"{where}.content[{k}]: must be a content block with a type")
    return content


def _tool_result_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for k, block in enumerate(_blocks(content, where)):
        if block["type"] == "text":
            parts.append(_text(block, f"{where}.content[{k}]"))
        else:
            raise ValueError(f"{where}.content[{k}].type: only text is translated for a non-Anthropic target")
    return "".join(parts)


def _user(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Chat messages for one user turn: its tool results first (as tool messages), then its text and images."""
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for k, block in enumerate(blocks):
        w = f"{where}.content[{k}]"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, w)})
        elif kind == "image":
            parts.append(_image(block, w))
        elif kind == "tool_result":
            tid = block.get("tool_use_id")
            if not isinstance(tid, str) or not tid:
                raise ValueError(f"{w}.tool_use_id: required")
            text = _tool_result_text(block.get("content"), w)
            if block.get("is_error"):
                text = f"Error: {text}"
            tools.append({"role": "tool", "tool_call_id": tid, "content": text})
        else:
            raise ValueError(f"{w}.type: {kind!r} is not translated for a non-Anthropic target")
    out = list(tools)
    if parts:
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if plain else parts})
    return out


def _assistant(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for k, block in enumerate(blocks):
        w = f"{where}.content[{k}]"
        kind = block["type"]
        if kind == "text":
            text.append(_text(block, w))
        elif kind == "tool_use":
            tid, name = block.get("id"), block.get("name")
            if not isinstance(tid, str) or not isinstance(name, str):
                raise ValueError(f"{w}: tool_use needs id and name")
            args = orjson.dumps(block.get("input") or {}).decode()
            calls.append({"id": tid, "type": "function", "function": {"name": name, "arguments": args}})
        elif kind in ("thinking", "redacted_thinking"):
            continue  # earlier reasoning: other hosts have nowhere to put it
        else:
            raise ValueError(f"{w}.type: {kind!r} is not translated for a non-Anthropic target")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _system(system: Any) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "".join(_text(b, f"system[{k}]") for k, b in enumerate(_blocks(system, "system")))
    raise ValueError("system: must be a string or a list of text blocks")


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise ValueError("tools: must be a list")
    out = []
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ValueError(f"tools[{j}]: needs a name")
        if tool.get("type") not in (None, "custom"):
            raise ValueError(f"tools[{j}].type: the server tool {tool['type']!r} needs an Anthropic target")
        fn: dict[str, Any] = {
            "name": tool["name"],
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out or None


def to_chat_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat body for a Messages request. Raises ValueError naming a bad field."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: required: a non-empty list of messages")
    out: list[dict[str, Any]] = []
    if system := _system(body.get("system")):
        out.append({"role": "system", "content": system})
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ValueError(f"{where}: must be an object")
        role = m.get("role")
        blocks = _blocks(m.get("content"), where)
        if role == "user":
            out.extend(_user(blocks, where))
        elif role == "assistant":
            out.append(_assistant(blocks, where))
        else:
            raise ValueError(f"{where}.role: must be user or assistant, got {role!r}")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": out}
    limit = body.get("max_tokens")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_tokens: required: a positive integer, got {limit!r}")
    chat["max_tokens"] = limit
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ValueError("stop_sequences: must be a list of strings")
        if stops:
            chat["stop"] = stops
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: must be a number")
            chat[name] = value
    if (tools := _tools(body.get("tools"))) is not None:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict):
            raise ValueError("tool_choice: must be an object like {type: auto}")
        kind = choice.get("type")
        if kind == "auto":
            chat["tool_choice"] = "auto"
        elif kind == "any":
            chat["tool_choice"] = "required"
        elif kind == "none":
            chat["tool_choice"] = "none"
        elif kind == "tool" and isinstance(choice.get("name"), str):
            chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:
            raise ValueError("tool_choice.type: use auto, any, tool (with name) or none")
        if choice.get("disable_parallel_tool_use") is True and "tools" in chat:
            chat["parallel_tool_calls"] = False
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        chat["user"] = meta["user_id"]
    return chat


def message_usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    u = usage or {}
    return {
        "input_tokens": int(u.get("prompt_tokens") or u.get("input_tokens") or 0),
        "output_tokens": int(u.get("completion_tokens") or u.get("output_tokens") or 0),
    }


def from_chat_completion(completion: Mapping[str, Any], *, mid: str, model: str) -> dict[str, Any]:
    """The `message` for a chat completion."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if isinstance(msg.get("content"), str) and msg["content"]:
        content.append({"type": "text", "text": msg["content"]})
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {"_raw": fn.get("arguments")}  # the model wrote broken JSON: kept, not dropped
        content.append({"type": "tool_use", "id": str(call.get("id") or ""), "name": fn.get("name", ""), "input": args})
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASON.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": message_usage(completion.get("usage")),
    }
