"""What a simulated provider answers, independent of wire format: the normalised call (model, prompt text,
token budget, forced tool) and the deterministic answer (tokens, finish, tool call, usage), plus the
`WireFormat` protocol each family module implements to put them on the wire."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from adapters.sim.catalogue import ErrorResponse

__all__ = [
    "BadRequest",
    "ToolCall",
    "ChatCall",
    "Answer",
    "WireFormat",
    "build_answer",
    "estimate_tokens",
    "args_from_schema",
    "text_of",
]


class BadRequest(ValueError):
    """The caller's request is malformed; becomes the family's 400 answer."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = "call_sim_0"

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One inference request, normalised across families."""

    model: str
    prompt_text: str
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    forced_tool: ToolCall | None = None  # set when the request requires a tool call
    rid: str = "sim-0"  # response id, shared by every chunk of one stream
    created: int = 0  # unix seconds from the injected clock


@dataclass(frozen=True, slots=True)
class Answer:
    """The deterministic reply to one call."""

    tokens: list[str]
    finish: Literal["stop", "length", "tool"]
    input_tokens: int
    output_tokens: int
    tool_call: ToolCall | None = None
    text: str = field(default="")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def estimate_tokens(text: str) -> int:
    """About four characters per token, at least one: stable and cheap."""
    return max(1, math.ceil(len(text) / 4))


_TOKEN = re.compile(r"\S+\s*|\s+")


def build_answer(call: ChatCall, text: str) -> Answer:
    """The reply: `text` split into word tokens, cut at `max_tokens`; or the forced tool call."""
    input_tokens = estimate_tokens(call.prompt_text)
    if call.forced_tool is not None:
        out = estimate_tokens(call.forced_tool.arguments_json)
        return Answer([], "tool", input_tokens, out, tool_call=call.forced_tool)
    tokens = _TOKEN.findall(text) or [text]
    finish: Literal["stop", "length"] = "stop"
    if call.max_tokens is not None and len(tokens) > call.max_tokens:
        tokens, finish = tokens[: call.max_tokens], "length"
    return Answer(tokens, finish, input_tokens, len(tokens), text="".join(tokens))


def args_from_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments that satisfy a JSON schema's properties with fixed values, so echoed tool calls validate."""
    if not isinstance(schema, Mapping):
        return {}
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return {}
    out: dict[str, Any] = {}
    for name, prop in props.items():
        out[str(name)] = _value_for(prop if isinstance(prop, Mapping) else {})
    return out


def _value_for(prop: Mapping[str, Any]) -> Any:
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return prop["enum"][0]
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    kind = str(kind).lower() if kind else "string"
    return {
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": args_from_schema(prop),
    }.get(kind, "sim")


def text_of(content: Any) -> str:
    """Plain text from a message `content` in any family's shape (string, parts or blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(p) for p in content)
    if isinstance(content, Mapping):
        for key in ("text", "content", "parts"):
            if key in content:
                return text_of(content[key])
    return ""


class WireFormat(Protocol):
    """One API family's shapes. Stream methods return complete SSE events as bytes."""

    family: str
    stream_content_type: str  # text/event-stream, or Bedrock's application/vnd.amazon.eventstream

    def parse(self, body: Any, path_model: str | None = None, *, count_only: bool = False) -> ChatCall:
        """Normalise a request body (raise BadRequest naming the field)."""
        ...

    def models_page(
        self, models: list[tuple[str, int, str]], query: Mapping[str, str], page_size: int
    ) -> dict[str, Any]:
        """The catalogue page for (name, context_window, display_name) rows."""
        ...

    def model_item(self, name: str, context_window: int, display: str) -> dict[str, Any]: ...

    def bad_request(self, message: str, param: str | None = None) -> ErrorResponse: ...

    def completion(self, call: ChatCall, answer: Answer) -> dict[str, Any]: ...

    def empty(self, call: ChatCall) -> dict[str, Any]: ...

    def policy(self, call: ChatCall) -> dict[str, Any]: ...

    def stream_preamble(self, call: ChatCall, answer: Answer) -> list[bytes]: ...

    def stream_token(self, call: ChatCall, token: str) -> bytes: ...

    def stream_tool(self, call: ChatCall, answer: Answer) -> list[bytes]: ...

    def stream_finish(self, call: ChatCall, answer: Answer) -> list[bytes]: ...

    def stream_empty(self, call: ChatCall) -> list[bytes]: ...

    def stream_policy(self, call: ChatCall) -> list[bytes]: ...

    def stream_malformed(self) -> bytes: ...

    def stream_mid_error(self, fault_id: str) -> list[bytes]: ...

    def keepalive(self, flavor: str) -> bytes | None: ...
