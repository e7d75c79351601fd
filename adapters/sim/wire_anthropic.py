"""Anthropic Messages wire format for the simulator: `/v1/messages` (JSON and typed SSE events),
`/v1/models` with `has_more/first_id/last_id` pagination, and the in-stream `event: error`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.sim.catalogue import ErrorResponse, an_body
from adapters.sim.chat import Answer, BadRequest, ChatCall, ToolCall, args_from_schema, text_of

__all__ = ["AnthropicWire", "event"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}


def event(name: str, obj: object) -> bytes:
    return f"event: {name}\ndata: ".encode() + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class AnthropicWire:
    """`/v1/messages`, `/v1/messages/count_tokens` and `/v1/models` shapes."""

    family = "anthropic"
    stream_content_type = "text/event-stream"

    def parse(self, body: Any, path_model: str | None = None, *, count_only: bool = False) -> ChatCall:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        model = body.get("model") or path_model  # Vertex's rawPredict names the model in the path
        if not isinstance(model, str) or not model:
            raise BadRequest("model: Field required", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages: Field required", "messages")
        limit = body.get("max_tokens")
        if not count_only and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise BadRequest("max_tokens: Field required (a positive integer)", "max_tokens")
        system = text_of(body.get("system", ""))
        text = " ".join([system, *(text_of(m.get("content")) for m in messages if isinstance(m, dict))]).strip()
        return ChatCall(
            model=model,
            prompt_text=text,
            max_tokens=limit if isinstance(limit, int) else None,
            stream=bool(body.get("stream", False)),
            include_usage=True,
            forced_tool=_forced_tool(body.get("tools"), body.get("tool_choice")),
        )

    def bad_request(self, message: str, param: str | None = None) -> ErrorResponse:
        return ErrorResponse(400, an_body("invalid_request_error", message))

    # -- catalogue --
    def model_item(self, name: str, context_window: int, display: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": name,
            "display_name": display,
            "created_at": "2025-01-01T00:00:00Z",
            "max_input_tokens": context_window,
            "max_tokens": 8192,
        }

    def models_page(
        self, models: list[tuple[str, int, str]], query: Mapping[str, str], page_size: int
    ) -> dict[str, Any]:
        try:
            limit = max(1, min(1000, int(query.get("limit", page_size))))
        except ValueError:
            limit = page_size
        names = [m[0] for m in models]
        start = 0
        if (after := query.get("after_id")) in names:
            start = names.index(after) + 1
        end = start + limit
        if (before := query.get("before_id")) in names:
            end = names.index(before)
            start = max(0, end - limit)
        page = models[start:end]
        return {
            "data": [self.model_item(*m) for m in page],
            "has_more": end < len(models),
            "first_id": page[0][0] if page else None,
            "last_id": page[-1][0] if page else None,
        }

    # -- plain answers --
    def _message(
        self, call: ChatCall, content: list[dict[str, Any]], stop: str | None, inp: int, out: int
    ) -> dict[str, Any]:
        return {
            "id": f"msg_{call.rid}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    def completion(self, call: ChatCall, answer: Answer) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": answer.text}]
        if answer.tool_call is not None:
            tc = answer.tool_call
            content = [{"type": "tool_use", "id": _tool_id(tc), "name": tc.name, "input": tc.arguments}]
        return self._message(call, content, _STOP[answer.finish], answer.input_tokens, answer.output_tokens)

    def empty(self, call: ChatCall) -> dict[str, Any]:
        return self._message(call, [], None, 1, 0)

    def policy(self, call: ChatCall) -> dict[str, Any]:
        return self._message(call, [], "refusal", 1, 0)

    # -- streams --
    def _start(self, call: ChatCall, inp: int) -> bytes:
        msg = self._message(call, [], None, inp, 1)
        return event("message_start", {"type": "message_start", "message": msg})

    def stream_preamble(self, call: ChatCall, answer: Answer) -> list[bytes]:
        out = [self._start(call, answer.input_tokens)]
        if answer.tool_call is None:
            out.append(
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                )
            )
        out.append(event("ping", {"type": "ping"}))
        return out

    def stream_token(self, call: ChatCall, token: str) -> bytes:
        return event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}},
        )

    def stream_tool(self, call: ChatCall, answer: Answer) -> list[bytes]:
        tc = answer.tool_call
        if tc is None:
            return []
        block = {"type": "tool_use", "id": _tool_id(tc), "name": tc.name, "input": {}}
        return [
            event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": tc.arguments_json},
                },
            ),
        ]

    def stream_finish(self, call: ChatCall, answer: Answer) -> list[bytes]:
        return [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            self._delta(_STOP[answer.finish], answer.output_tokens),
            event("message_stop", {"type": "message_stop"}),
        ]

    def _delta(self, stop: str | None, out: int) -> bytes:
        return event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": out},
            },
        )

    def stream_empty(self, call: ChatCall) -> list[bytes]:
        return [self._start(call, 1), self._delta(None, 0), event("message_stop", {"type": "message_stop"})]

    def stream_policy(self, call: ChatCall) -> list[bytes]:
        return [self._start(call, 1), self._delta("refusal", 0), event("message_stop", {"type": "message_stop"})]

    def stream_malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ab\n\n'

    def stream_mid_error(self, fault_id: str) -> list[bytes]:
        return [event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]

    def keepalive(self, flavor: str) -> bytes | None:
        return event("ping", {"type": "ping"})


def _tool_id(tc: ToolCall) -> str:
    return tc.id.replace("call_", "toolu_")


def _forced_tool(tools: Any, choice: Any) -> ToolCall | None:
    """The tool to call when `tool_choice` is `{"type":"any"}` or `{"type":"tool","name":…}`."""
    if not isinstance(tools, list) or not tools or not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind not in ("any", "tool"):
        return None
    named = [t for t in tools if isinstance(t, dict) and "name" in t]
    if not named:
        return None
    wanted = choice.get("name") if kind == "tool" else None
    tool = next((t for t in named if t.get("name") == wanted), named[0])
    return ToolCall(str(tool["name"]), args_from_schema(tool.get("input_schema")))
