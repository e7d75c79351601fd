"""OpenAI Responses wire format for the simulator: `POST /v1/responses` as a `response` object (JSON) or the
Responses event sequence (`response.created` … `response.completed`), and its in-stream `error` /
`response.failed` shapes. Served by OpenAI-family providers beside chat completions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.sim.catalogue import ErrorResponse, oa_body
from adapters.sim.chat import Answer, BadRequest, ChatCall, ToolCall, args_from_schema, prefill_of, text_of

__all__ = ["ResponsesWire"]

_MAX_OPEN_STREAMS = 4096  # sequence counters kept for streams in flight; a stream abandoned midway is forgotten


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return (
        f"event: {kind}\ndata: ".encode()
        + json.dumps({"type": kind, **payload}, separators=(",", ":")).encode()
        + b"\n\n"
    )


class ResponsesWire:
    """`/v1/responses` shapes (the model list is the chat wire's)."""

    family = "openai"
    stream_content_type = "text/event-stream"

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}

    def _next(self, call: ChatCall) -> int:
        n = self._seq.get(call.rid, 0)
        if n == 0 and len(self._seq) >= _MAX_OPEN_STREAMS:
            self._seq.pop(next(iter(self._seq)))
        self._seq[call.rid] = n + 1
        return n

    def _ev(self, call: ChatCall, kind: str, **fields: Any) -> bytes:
        return _event(kind, {"sequence_number": self._next(call), **fields})

    def parse(self, body: Any, path_model: str | None = None, *, count_only: bool = False) -> ChatCall:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("Missing required parameter: 'model'.", "model")
        raw = body.get("input")
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and raw:
            texts = [text_of(i.get("content", i.get("output", ""))) for i in raw if isinstance(i, dict)]
        else:
            raise BadRequest("Missing required parameter: 'input'.", "input")
        limit = body.get("max_output_tokens")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 16):
            raise BadRequest(
                f"Invalid 'max_output_tokens': integer below minimum value 16, got {limit!r}.", "max_output_tokens"
            )
        instructions = str(body["instructions"]) if isinstance(body.get("instructions"), str) else ""
        return ChatCall(
            model=model,
            prompt_text=" ".join([instructions, *texts]).strip(),
            max_tokens=limit,
            stream=bool(body.get("stream", False)),
            include_usage=True,
            forced_tool=_forced_tool(body.get("tools"), body.get("tool_choice")),
            prefill=prefill_of(raw, "assistant") if isinstance(raw, list) else "",
        )

    def bad_request(self, message: str, param: str | None = None) -> ErrorResponse:
        return ErrorResponse(400, oa_body("invalid_request_error", None, message, param))

    def model_item(self, name: str, context_window: int, display: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "sim"}

    def models_page(
        self, models: list[tuple[str, int, str]], query: Mapping[str, str], page_size: int
    ) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_item(*m) for m in models]}

    # -- plain answers --
    def _response(
        self,
        call: ChatCall,
        output: list[dict[str, Any]],
        status: str,
        usage: tuple[int, int],
        reason: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": f"resp_{call.rid}",
            "object": "response",
            "created_at": call.created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": reason} if reason else None,
            "instructions": None,
            "max_output_tokens": call.max_tokens,
            "model": call.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": usage[0],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage[1],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage[0] + usage[1],
            },
            "user": None,
            "metadata": {},
        }

    def _message(self, call: ChatCall, text: str, status: str = "completed") -> dict[str, Any]:
        content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
        return {"type": "message", "id": f"msg_{call.rid}", "status": status, "role": "assistant", "content": content}

    def _call(self, call: ChatCall, tc: ToolCall, args: str, status: str = "completed") -> dict[str, Any]:
        return {
            "type": "function_call",
            "id": f"fc_{call.rid}",
            "call_id": tc.id,
            "name": tc.name,
            "arguments": args,
            "status": status,
        }

    def _status(self, answer: Answer) -> tuple[str, str | None]:
        return ("incomplete", "max_output_tokens") if answer.finish == "length" else ("completed", None)

    def _output(self, call: ChatCall, answer: Answer) -> list[dict[str, Any]]:
        if answer.tool_call is not None:
            return [self._call(call, answer.tool_call, answer.tool_call.arguments_json)]
        return [self._message(call, answer.text)]

    def completion(self, call: ChatCall, answer: Answer) -> dict[str, Any]:
        status, reason = self._status(answer)
        usage = (answer.input_tokens, answer.output_tokens)
        return self._response(call, self._output(call, answer), status, usage, reason)

    def empty(self, call: ChatCall) -> dict[str, Any]:
        return self._response(call, [], "completed", (1, 0))

    def policy(self, call: ChatCall) -> dict[str, Any]:
        return self._response(call, [], "incomplete", (1, 0), "content_filter")

    # -- streams --
    def _head(self, call: ChatCall) -> list[bytes]:
        snap = self._response(call, [], "in_progress", (0, 0))
        snap["usage"] = None
        return [
            self._ev(call, "response.created", response=snap),
            self._ev(call, "response.in_progress", response=snap),
        ]

    def stream_preamble(self, call: ChatCall, answer: Answer) -> list[bytes]:
        out = self._head(call)
        if answer.tool_call is None:
            part = {"type": "output_text", "text": "", "annotations": []}
            out += [
                self._ev(
                    call, "response.output_item.added", output_index=0, item=self._message(call, "", "in_progress")
                ),
                self._ev(
                    call,
                    "response.content_part.added",
                    item_id=f"msg_{call.rid}",
                    output_index=0,
                    content_index=0,
                    part=part,
                ),
            ]
        return out

    def stream_token(self, call: ChatCall, token: str) -> bytes:
        return self._ev(
            call,
            "response.output_text.delta",
            item_id=f"msg_{call.rid}",
            output_index=0,
            content_index=0,
            delta=token,
            logprobs=[],
        )

    def stream_tool(self, call: ChatCall, answer: Answer) -> list[bytes]:
        tc = answer.tool_call
        if tc is None:
            return []
        return [
            self._ev(call, "response.output_item.added", output_index=0, item=self._call(call, tc, "", "in_progress")),
            self._ev(
                call,
                "response.function_call_arguments.delta",
                item_id=f"fc_{call.rid}",
                output_index=0,
                delta=tc.arguments_json,
            ),
        ]

    def stream_finish(self, call: ChatCall, answer: Answer) -> list[bytes]:
        out: list[bytes] = []
        item = self._output(call, answer)[0]
        if answer.tool_call is not None:
            out.append(
                self._ev(
                    call,
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=0,
                    arguments=item["arguments"],
                )
            )
        else:
            common = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            out.append(self._ev(call, "response.output_text.done", text=answer.text, logprobs=[], **common))
            out.append(self._ev(call, "response.content_part.done", part=item["content"][0], **common))
        out.append(self._ev(call, "response.output_item.done", output_index=0, item=item))
        status, _ = self._status(answer)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._ev(call, kind, response=self.completion(call, answer)))
        self._seq.pop(call.rid, None)
        return out

    def stream_empty(self, call: ChatCall) -> list[bytes]:
        out = [*self._head(call), self._ev(call, "response.completed", response=self.empty(call))]
        self._seq.pop(call.rid, None)
        return out

    def stream_policy(self, call: ChatCall) -> list[bytes]:
        out = [*self._head(call), self._ev(call, "response.incomplete", response=self.policy(call))]
        self._seq.pop(call.rid, None)
        return out

    def stream_malformed(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"ab\n\n'

    def stream_mid_error(self, fault_id: str) -> list[bytes]:
        message = "The server had an error while processing your request."
        failed: dict[str, Any] = {"id": "resp_sim", "object": "response", "status": "failed", "output": []}
        failed["error"] = {"code": "server_error", "message": message}
        return [
            _event("error", {"code": "server_error", "message": message, "param": None, "sequence_number": 90}),
            _event("response.failed", {"sequence_number": 91, "response": failed}),
        ]

    def keepalive(self, flavor: str) -> bytes | None:
        return b": keep-alive\n\n"


def _forced_tool(tools: Any, choice: Any) -> ToolCall | None:
    """The function to call when `tool_choice` is `required` or `{type: function, name}`; None otherwise."""
    if not isinstance(tools, list):
        return None
    fns = [t for t in tools if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)]
    if not fns:
        return None
    wanted: str | None = None
    if isinstance(choice, dict) and choice.get("type") == "function":
        wanted = choice.get("name")
    elif choice != "required":
        return None
    fn = next((f for f in fns if f.get("name") == wanted), fns[0])
    return ToolCall(str(fn["name"]), args_from_schema(fn.get("parameters")))
