"""The OpenAI Responses API shape ↔ the OpenAI chat shape every adapter speaks.

A Responses request (`input` as a string or items, `instructions`, function tools and their outputs,
`max_output_tokens`, `text.format`) becomes a chat body for targets that do not serve the Responses API
natively; a chat completion comes back as a `response` object. What has no chat equivalent (built-in tools such
as web search, file inputs, item references) makes the request native-only: `NativeOnly` names why, and only
targets serving the Responses API natively may answer it. Bad caller input raises ValueError naming the field.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "NativeOnly",
    "to_chat_body",
    "input_items",
    "from_chat_completion",
    "response_object",
    "responses_usage",
    "new_id",
    "item_id",
    "message_item",
    "call_item",
    "FINISH_STATUS",
]

# chat finish_reason → (Responses status, incomplete_details.reason)
FINISH_STATUS: dict[str | None, tuple[str, str | None]] = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "function_call": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
    None: ("completed", None),
}
_ROLES = ("user", "assistant", "system", "developer")


class NativeOnly(ValueError):
    """The request uses something only a native Responses target can serve (`reason` says what)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_ITEMS = itertools.count(1)
_PROCESS = secrets.token_hex(6)


def new_id(prefix: str) -> str:
    """An id nobody can guess (a response id: with the store on, it is what reads a stored conversation back)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def item_id(prefix: str) -> str:
    """An output item's id: unique in this process, cheap (no random bytes per item)."""
    return f"{prefix}_{_PROCESS}{next(_ITEMS):x}"


def input_items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message). Raises ValueError naming the field."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise ValueError("input: required: a string or a non-empty list of items")
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"input[{i}]: must be an object")
    return list(raw)


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    """Chat content parts from Responses message content (a string or input_text/output_text/input_image)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ValueError(f"{where}.content: must be a string or a list of parts")
    out: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        if not isinstance(part, dict):
            raise ValueError(f"{where}.content[{k}]: must be an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise ValueError(f"{where}.content[{k}].text: must be a string")
            out.append({"type": "text", "text": text})
        elif kind == "refusal":
            out.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise NativeOnly(f"{where}.content[{k}]: input_image by file_id needs a native Responses target")
            out.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise NativeOnly(f"{where}.content[{k}].type {kind!r} has no chat equivalent")
    return out


def _flatten(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A plain string when every part is text (what every chat host accepts), else the parts."""
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _messages(items: list[dict[str, Any]], instructions: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise ValueError("instructions: must be a string")
        if instructions:
            out.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise ValueError(f"{where}.role: must be one of {', '.join(_ROLES)}, got {role!r}")
            content = _flatten(_text_parts(item.get("content"), where))
            if role == "assistant" and not isinstance(content, str):
                content = "".join(p.get("text", "") for p in content if p["type"] == "text")
            out.append({"role": role, "content": content})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id:
                raise ValueError(f"{where}.call_id: required")
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}.name: required")
            args = item.get("arguments", "")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": str(args or "")}}
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls of one turn stay in one assistant message
            elif last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                last["tool_calls"] = [call]  # the text the model said before calling
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise ValueError(f"{where}.call_id: required")
            output = item.get("output", "")
            if isinstance(output, list):
                output = "".join(p["text"] for p in _text_parts(output, f"{where}.output") if p["type"] == "text")
            elif not isinstance(output, str):
                raise ValueError(f"{where}.output: must be a string or a list of parts")
            out.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # a reasoning summary from an earlier turn: chat hosts have nowhere to put it
        else:
            raise NativeOnly(f"{where}.type {kind!r} has no chat equivalent")
    return out


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise ValueError("tools: must be a list")
    out: list[dict[str, Any]] = []
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ValueError(f"tools[{j}]: must be an object")
        if tool.get("type") != "function":
            raise NativeOnly(f"tools[{j}]: the built-in tool {tool.get('type')!r} needs a native Responses target")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tools[{j}].name: required")
        fn: dict[str, Any] = {
            "name": name,
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            fn["description"] = tool["description"]
        if tool.get("strict") is not None:
            fn["strict"] = tool["strict"]
        out.append({"type": "function", "function": fn})
    return out or None


def _tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(choice, dict):
        raise NativeOnly(f"tool_choice {choice.get('type')!r} needs a native Responses target")
    raise ValueError("tool_choice: must be auto, none, required or {type: function, name}")


def _response_format(text: Any) -> dict[str, Any] | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise ValueError("text: must be an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise ValueError("text.format: must be an object")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: dict[str, Any] = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise ValueError(f"text.format.type: unknown {kind!r}; use text, json_object or json_schema")


def to_chat_body(body: Mapping[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat body for a Responses request whose `input` (with any earlier turns prepended) is `items`.

    Raises ValueError naming a bad field, NativeOnly when the request has no chat equivalent."""
    out: dict[str, Any] = {"model": body.get("model"), "messages": _messages(items, body.get("instructions"))}
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_output_tokens: must be a positive integer, got {limit!r}")
        out["max_tokens"] = limit
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: must be a number")
            out[name] = value
    if (tools := _tools(body.get("tools"))) is not None:
        out["tools"] = tools
    if (choice := _tool_choice(body.get("tool_choice"))) is not None:
        out["tool_choice"] = choice
    if isinstance(body.get("parallel_tool_calls"), bool) and "tools" in out:
        out["parallel_tool_calls"] = body["parallel_tool_calls"]
    if (rf := _response_format(body.get("text"))) is not None:
        out["response_format"] = rf
    if isinstance(body.get("user"), str):
        out["user"] = body["user"]
    for name in ("conversation", "prompt", "background"):  # server-side state and jobs chat hosts do not have
        if body.get(name):
            raise NativeOnly(f"{name} needs a native Responses target")
    return out


def responses_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """Responses usage from chat usage (prompt/completion tokens)."""
    u = usage or {}
    tin = int(u.get("prompt_tokens") or u.get("input_tokens") or 0)
    tout = int(u.get("completion_tokens") or u.get("output_tokens") or 0)
    cached = int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": tin,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": tout,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": tin + tout,
    }


def response_object(
    body: Mapping[str, Any],
    *,
    rid: str,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    created_at: int | None = None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `response` object echoing the request's settings, as the Responses API returns it."""
    text = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": rid,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": bool(body.get("store", False)),
        "temperature": body.get("temperature", 1.0),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def from_chat_completion(body: Mapping[str, Any], completion: Mapping[str, Any], *, rid: str) -> dict[str, Any]:
    """The `response` object for a chat completion answering the Responses request `body`."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(
            {"type": "reasoning", "id": item_id("rs"), "summary": [{"type": "summary_text", "text": reasoning}]}
        )
    content = msg.get("content")
    if isinstance(content, str) and content:
        output.append(message_item(item_id("msg"), content))
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        output.append(
            call_item(
                item_id("fc"),
                str(call.get("id") or item_id("call")),
                str(fn.get("name", "")),
                fn.get("arguments") or "",
            )
        )
    if not output:
        output.append(message_item(item_id("msg"), ""))
    status, reason = FINISH_STATUS.get(choice.get("finish_reason"), ("completed", None))
    return response_object(
        body,
        rid=rid,
        model=str(completion.get("model") or body.get("model") or ""),
        status=status,
        output=output,
        usage=responses_usage(completion.get("usage")),
        incomplete_reason=reason,
    )
