"""OpenAI-compatible wire format for the simulator: chat completions (JSON and SSE chunks), the model list,
and the in-stream error shapes of OpenAI and OpenRouter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.sim.catalogue import ErrorResponse, oa_body
from adapters.sim.chat import Answer, BadRequest, ChatCall, ToolCall, args_from_schema, text_of

__all__ = ["OpenAIWire", "sse"]

_FINISH = {"stop": "stop", "length": "length", "tool": "tool_calls"}


def sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class OpenAIWire:
    """`/v1/chat/completions` and `/v1/models` shapes."""

    family = "openai"
    stream_content_type = "text/event-stream"

    def parse(self, body: Any, path_model: str | None = None, *, count_only: bool = False) -> ChatCall:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        model = path_model or body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty array", "messages")
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise BadRequest(f"max_tokens must be a positive integer, got {limit!r}", "max_tokens")
        opts = body.get("stream_options") or {}
        return ChatCall(
            model=model,
            prompt_text=" ".join(text_of(m.get("content")) for m in messages if isinstance(m, dict)),
            max_tokens=limit,
            stream=bool(body.get("stream", False)),
            include_usage=bool(isinstance(opts, dict) and opts.get("include_usage")),
            forced_tool=_forced_tool(body.get("tools"), body.get("tool_choice")),
        )

    def bad_request(self, message: str, param: str | None = None) -> ErrorResponse:
        return ErrorResponse(400, oa_body("invalid_request_error", None, message, param))

    # -- catalogue --
    def model_item(self, name: str, context_window: int, display: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "sim"}

    def models_page(
        self, models: list[tuple[str, int, str]], query: Mapping[str, str], page_size: int
    ) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_item(*m) for m in models]}

    # -- plain answers --
    def _envelope(self, call: ChatCall, choices: list[dict[str, Any]], usage: dict[str, int] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": f"chatcmpl-{call.rid}",
            "object": "chat.completion",
            "created": call.created,
            "model": call.model,
            "system_fingerprint": "fp_sim",
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage
        return out

    def completion(self, call: ChatCall, answer: Answer) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.tool_call is not None:
            message["content"] = None
            message["tool_calls"] = [_tool_json(answer.tool_call)]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _FINISH[answer.finish]}
        return self._envelope(call, [choice], _usage(answer.input_tokens, answer.output_tokens))

    def empty(self, call: ChatCall) -> dict[str, Any]:
        choice = {"index": 0, "message": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        return self._envelope(call, [choice], _usage(1, 0))

    def policy(self, call: ChatCall) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
        return self._envelope(call, [choice], _usage(1, 0))

    # -- streams --
    def _chunk(self, call: ChatCall, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            {
                "id": f"chatcmpl-{call.rid}",
                "object": "chat.completion.chunk",
                "created": call.created,
                "model": call.model,
                "system_fingerprint": "fp_sim",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
        )

    def stream_preamble(self, call: ChatCall, answer: Answer) -> list[bytes]:
        return [self._chunk(call, {"role": "assistant", "content": "", "refusal": None})]

    def stream_token(self, call: ChatCall, token: str) -> bytes:
        return self._chunk(call, {"content": token})

    def stream_tool(self, call: ChatCall, answer: Answer) -> list[bytes]:
        tc = answer.tool_call
        if tc is None:
            return []
        head = {"index": 0, "id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": ""}}
        return [
            self._chunk(call, {"tool_calls": [head]}),
            self._chunk(call, {"tool_calls": [{"index": 0, "function": {"arguments": tc.arguments_json}}]}),
        ]

    def stream_finish(self, call: ChatCall, answer: Answer) -> list[bytes]:
        out = [self._chunk(call, {}, _FINISH[answer.finish])]
        if call.include_usage:
            out.append(self._usage_chunk(call, answer.input_tokens, answer.output_tokens))
        return [*out, b"data: [DONE]\n\n"]

    def _usage_chunk(self, call: ChatCall, prompt: int, completion: int) -> bytes:
        return sse(
            {
                "id": f"chatcmpl-{call.rid}",
                "object": "chat.completion.chunk",
                "created": call.created,
                "model": call.model,
                "system_fingerprint": "fp_sim",
                "choices": [],
                "usage": _usage(prompt, completion),
            }
        )

    def stream_empty(self, call: ChatCall) -> list[bytes]:
        return [self._chunk(call, {"role": "assistant", "content": ""}), b"data: [DONE]\n\n"]

    def stream_policy(self, call: ChatCall) -> list[bytes]:
        return [
            self._chunk(call, {"role": "assistant", "content": ""}),
            self._chunk(call, {}, "content_filter"),
            b"data: [DONE]\n\n",
        ]

    def stream_malformed(self) -> bytes:
        return b'data: {"choices":[{"delta":{"content":"ab\n\n'

    def stream_mid_error(self, fault_id: str) -> list[bytes]:
        if fault_id == "OR-MID":
            err = {
                "id": "gen-sim",
                "object": "chat.completion.chunk",
                "error": {"code": 502, "message": "Provider returned error"},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
            }
            return [sse(err), b"data: [DONE]\n\n"]
        return [
            sse(
                {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "code": None,
                    }
                }
            )
        ]

    def keepalive(self, flavor: str) -> bytes | None:
        return b": OPENROUTER PROCESSING\n\n" if flavor == "openrouter" else b": keep-alive\n\n"


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_json(tc: ToolCall) -> dict[str, Any]:
    return {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments_json}}


def _forced_tool(tools: Any, choice: Any) -> ToolCall | None:
    """The tool to call when `tool_choice` is `required` or names a function; None otherwise."""
    if not isinstance(tools, list) or not tools:
        return None
    fns: list[dict[str, Any]] = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if not fns:
        return None
    wanted: str | None = None
    if isinstance(choice, dict):
        named = choice.get("function")
        wanted = named.get("name") if isinstance(named, dict) else None
    elif choice != "required":
        return None
    fn = next((f for f in fns if f.get("name") == wanted), fns[0])
    return ToolCall(str(fn.get("name", "tool")), args_from_schema(fn.get("parameters")))
