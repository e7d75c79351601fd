"""Gemini API wire format for the simulator: `models/{m}:generateContent`, `:streamGenerateContent?alt=sse`
(CRLF-framed `data:` chunks, closed after the chunk with `finishReason`), `:countTokens` and `/models` pages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.sim.catalogue import ErrorResponse, gg_body
from adapters.sim.chat import Answer, BadRequest, ChatCall, ToolCall, args_from_schema, text_of

__all__ = ["GeminiWire", "GG_MID_BODY"]

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool": "STOP"}
# GG-MID: the GG-503 body as Gemini sends it mid-stream: raw, multi-line, without `data:`.
GG_MID_BODY = json.dumps(
    {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}},
    indent=2,
)


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\r\n\r\n"


class GeminiWire:
    """`/v1beta/models…` shapes."""

    family = "gemini"
    stream_content_type = "text/event-stream"

    def parse(self, body: Any, path_model: str | None = None, *, count_only: bool = False) -> ChatCall:
        if not isinstance(body, dict):
            raise BadRequest("Invalid JSON payload received. The request body must be a JSON object.")
        if count_only and isinstance(body.get("generateContentRequest"), dict):
            body = body["generateContentRequest"]
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise BadRequest("* GenerateContentRequest.contents: contents is not specified", "contents")
        gen = body.get("generationConfig") or {}
        limit = gen.get("maxOutputTokens") if isinstance(gen, dict) else None
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise BadRequest(
                f"* GenerateContentRequest.generation_config.max_output_tokens: must be positive, got {limit!r}",
                "generationConfig",
            )
        system = text_of(
            (body.get("systemInstruction") or {}).get("parts", [])
            if isinstance(body.get("systemInstruction"), dict)
            else ""
        )
        text = " ".join([system, *(text_of(c.get("parts", [])) for c in contents if isinstance(c, dict))]).strip()
        return ChatCall(
            model=path_model or "",
            prompt_text=text,
            max_tokens=limit,
            include_usage=True,
            forced_tool=_forced_tool(body.get("tools"), body.get("toolConfig")),
        )

    def bad_request(self, message: str, param: str | None = None) -> ErrorResponse:
        return ErrorResponse(400, gg_body(400, "INVALID_ARGUMENT", message))

    # -- catalogue --
    def model_item(self, name: str, context_window: int, display: str) -> dict[str, Any]:
        return {
            "name": f"models/{name}",
            "version": "001",
            "displayName": display,
            "description": f"Simulated {display}",
            "inputTokenLimit": context_window,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        }

    def models_page(
        self, models: list[tuple[str, int, str]], query: Mapping[str, str], page_size: int
    ) -> dict[str, Any]:
        try:
            size = max(1, min(1000, int(query.get("pageSize", page_size))))
            start = int(query.get("pageToken", "0") or "0")
        except ValueError:
            size, start = page_size, 0
        out: dict[str, Any] = {"models": [self.model_item(*m) for m in models[start : start + size]]}
        if start + size < len(models):
            out["nextPageToken"] = str(start + size)
        return out

    # -- plain answers --
    def _usage(self, inp: int, out: int) -> dict[str, int]:
        return {"promptTokenCount": inp, "candidatesTokenCount": out, "totalTokenCount": inp + out}

    def _response(
        self, call: ChatCall, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int]
    ) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish is not None:
            cand["finishReason"] = finish
        return {"candidates": [cand], "usageMetadata": usage, "modelVersion": call.model, "responseId": call.rid}

    def completion(self, call: ChatCall, answer: Answer) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": answer.text}]
        if answer.tool_call is not None:
            parts = [{"functionCall": {"name": answer.tool_call.name, "args": answer.tool_call.arguments}}]
        return self._response(
            call, parts, _FINISH[answer.finish], self._usage(answer.input_tokens, answer.output_tokens)
        )

    def empty(self, call: ChatCall) -> dict[str, Any]:
        return self._response(call, [], None, self._usage(1, 0))

    def policy(self, call: ChatCall) -> dict[str, Any]:
        return {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1},
            "modelVersion": call.model,
        }

    # -- streams --
    def stream_preamble(self, call: ChatCall, answer: Answer) -> list[bytes]:
        return []  # Gemini streams start with content

    def stream_token(self, call: ChatCall, token: str) -> bytes:
        return _sse(self._response(call, [{"text": token}], None, {"promptTokenCount": 1, "totalTokenCount": 1}))

    def stream_tool(self, call: ChatCall, answer: Answer) -> list[bytes]:
        tc = answer.tool_call
        if tc is None:
            return []
        return [
            _sse(
                self._response(
                    call,
                    [{"functionCall": {"name": tc.name, "args": tc.arguments}}],
                    None,
                    self._usage(answer.input_tokens, 0),
                )
            )
        ]

    def stream_finish(self, call: ChatCall, answer: Answer) -> list[bytes]:
        usage = self._usage(answer.input_tokens, answer.output_tokens)
        return [_sse(self._response(call, [{"text": ""}], _FINISH[answer.finish], usage))]

    def stream_empty(self, call: ChatCall) -> list[bytes]:
        return [_sse(self.empty(call))]

    def stream_policy(self, call: ChatCall) -> list[bytes]:
        return [_sse(self.policy(call))]

    def stream_malformed(self) -> bytes:
        return b'data: {"candidates":[{"content":{"parts":[{"text":"ab\r\n\r\n'

    def stream_mid_error(self, fault_id: str) -> list[bytes]:
        return [GG_MID_BODY.encode() + b"\n"]

    def keepalive(self, flavor: str) -> bytes | None:
        return None  # Gemini sends nothing while queued


def _forced_tool(tools: Any, tool_config: Any) -> ToolCall | None:
    """The function to call when `toolConfig.functionCallingConfig.mode` is ANY."""
    if not isinstance(tools, list) or not isinstance(tool_config, dict):
        return None
    fcc = tool_config.get("functionCallingConfig")
    if not isinstance(fcc, dict) or str(fcc.get("mode", "")).upper() != "ANY":
        return None
    decls = [
        d
        for t in tools
        if isinstance(t, dict)
        for d in t.get("functionDeclarations", [])
        if isinstance(d, dict) and "name" in d
    ]
    if not decls:
        return None
    allowed = fcc.get("allowedFunctionNames") or []
    decl = next((d for d in decls if d["name"] in allowed), decls[0])
    return ToolCall(str(decl["name"]), args_from_schema(decl.get("parameters")))
