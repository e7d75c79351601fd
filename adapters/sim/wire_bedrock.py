"""AWS Bedrock wire format for the simulator: Converse (`/model/{id}/converse`), ConverseStream (the binary event
stream), `/model/{id}/count-tokens`, and the control plane's `/foundation-models`, `/inference-profiles` and
`/foundation-model-availability/{id}`. Errors carry their exception name in `x-amzn-ErrorType`; the body is
only `{"message": …}`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.sim.catalogue import ErrorResponse
from adapters.sim.chat import Answer, BadRequest, ChatCall, ToolCall, args_from_schema, text_of
from adapters.sim.eventstream import event, exception

__all__ = ["BedrockWire", "br_error", "GEO_PREFIXES", "base_id"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}
GEO_PREFIXES = ("eu.", "us.", "apac.", "global.")
# What the simulator's mid-stream fault sends (BR-MID): the stream's own exception event.
_MID = ("modelStreamErrorException", "The model stream failed while generating a response.")


def base_id(model: str) -> str:
    return next((model[len(p) :] for p in GEO_PREFIXES if model.startswith(p)), model)


def br_error(status: int, exception_name: str, message: str) -> ErrorResponse:
    """A Bedrock error answer: the exception in `x-amzn-ErrorType`, the message in the body."""
    headers = {"x-amzn-ErrorType": f"{exception_name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    return ErrorResponse(status, json.dumps({"message": message}).encode(), headers)


class BedrockWire:
    """Converse shapes and the ConverseStream event stream."""

    family = "bedrock"
    stream_content_type = "application/vnd.amazon.eventstream"

    def parse(self, body: Any, path_model: str | None = None, *, count_only: bool = False) -> ChatCall:
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        if count_only:
            converse = body.get("input", {}).get("converse") if isinstance(body.get("input"), dict) else None
            if not isinstance(converse, dict):
                raise BadRequest("1 validation error detected: Value at 'input' failed to satisfy constraint")
            body = converse
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest(
                "1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null"
            )
        config = body.get("inferenceConfig") or {}
        limit = config.get("maxTokens") if isinstance(config, dict) else None
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise BadRequest(
                "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )
        system = text_of(body.get("system", []))
        text = " ".join([system, *(text_of(m.get("content")) for m in messages if isinstance(m, dict))]).strip()
        return ChatCall(
            model=path_model or "",
            prompt_text=text,
            max_tokens=limit,
            include_usage=True,
            forced_tool=_forced_tool(body.get("toolConfig")),
        )

    def bad_request(self, message: str, param: str | None = None) -> ErrorResponse:
        return br_error(400, "ValidationException", message)

    # -- control plane (catalogue) --
    def model_item(self, name: str, context_window: int, display: str) -> dict[str, Any]:
        provider = name.split(".", 1)[0].capitalize()
        return {
            "modelArn": f"arn:aws:bedrock:sim::foundation-model/{name}",
            "modelId": name,
            "modelName": display,
            "providerName": provider,
            "inputModalities": ["TEXT"],
            "outputModalities": ["TEXT"],
            "responseStreamingSupported": True,
            "customizationsSupported": [],
            "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
            "modelLifecycle": {"status": "ACTIVE"},
        }

    def models_page(
        self, models: list[tuple[str, int, str]], query: Mapping[str, str], page_size: int
    ) -> dict[str, Any]:
        """`GET /foundation-models`: base ids only (a profile id `eu.x` lists its base model `x`)."""
        seen: dict[str, tuple[str, int, str]] = {}
        for name, window, display in models:
            seen.setdefault(base_id(name), (base_id(name), window, display))
        return {"modelSummaries": [self.model_item(*m) for m in seen.values()]}

    def profiles_page(
        self, models: list[tuple[str, int, str]], query: Mapping[str, str], page_size: int
    ) -> dict[str, Any]:
        """`GET /inference-profiles`: the cross-region profile ids, paged by `nextToken`."""
        profiles = [m for m in models if m[0] != base_id(m[0])]
        try:
            size = max(1, min(1000, int(query.get("maxResults", page_size))))
            start = int(query.get("nextToken", "0") or "0")
        except ValueError:
            size, start = page_size, 0
        out: dict[str, Any] = {
            "inferenceProfileSummaries": [
                {
                    "inferenceProfileName": f"{display} (cross-region)",
                    "inferenceProfileArn": f"arn:aws:bedrock:sim::inference-profile/{name}",
                    "inferenceProfileId": name,
                    "models": [{"modelArn": f"arn:aws:bedrock:sim::foundation-model/{base_id(name)}"}],
                    "status": "ACTIVE",
                    "type": "SYSTEM_DEFINED",
                }
                for name, _, display in profiles[start : start + size]
            ]
        }
        if start + size < len(profiles):
            out["nextToken"] = str(start + size)
        return out

    # -- plain answers --
    def _usage(self, inp: int, out: int) -> dict[str, int]:
        return {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out}

    def completion(self, call: ChatCall, answer: Answer) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"text": answer.text}]
        if answer.tool_call is not None:
            tc = answer.tool_call
            content = [{"toolUse": {"toolUseId": tc.id, "name": tc.name, "input": tc.arguments}}]
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": _STOP[answer.finish],
            "usage": self._usage(answer.input_tokens, answer.output_tokens),
            "metrics": {"latencyMs": 1},
        }

    def empty(self, call: ChatCall) -> dict[str, Any]:
        return {
            "output": {"message": {"role": "assistant", "content": []}},
            "usage": self._usage(1, 0),
            "metrics": {"latencyMs": 1},
        }

    def policy(self, call: ChatCall) -> dict[str, Any]:
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": ""}]}},
            "stopReason": "content_filtered",
            "usage": self._usage(1, 0),
            "metrics": {"latencyMs": 1},
        }

    # -- streams --
    def stream_preamble(self, call: ChatCall, answer: Answer) -> list[bytes]:
        return [event("messageStart", {"role": "assistant"})]

    def stream_token(self, call: ChatCall, token: str) -> bytes:
        return event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": token}})

    def stream_tool(self, call: ChatCall, answer: Answer) -> list[bytes]:
        tc = answer.tool_call
        if tc is None:
            return []
        return [
            event(
                "contentBlockStart",
                {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tc.id, "name": tc.name}}},
            ),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": tc.arguments_json}}}),
        ]

    def stream_finish(self, call: ChatCall, answer: Answer) -> list[bytes]:
        return [
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event("messageStop", {"stopReason": _STOP[answer.finish]}),
            event(
                "metadata",
                {"usage": self._usage(answer.input_tokens, answer.output_tokens), "metrics": {"latencyMs": 1}},
            ),
        ]

    def stream_empty(self, call: ChatCall) -> list[bytes]:
        return [
            event("messageStart", {"role": "assistant"}),
            event("metadata", {"usage": self._usage(1, 0), "metrics": {"latencyMs": 1}}),
        ]

    def stream_policy(self, call: ChatCall) -> list[bytes]:
        return [
            event("messageStart", {"role": "assistant"}),
            event("messageStop", {"stopReason": "content_filtered"}),
            event("metadata", {"usage": self._usage(1, 0), "metrics": {"latencyMs": 1}}),
        ]

    def stream_malformed(self) -> bytes:
        good = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "ab"}})
        return good[:-4] + b"\x00\x00\x00\x00"  # the message CRC does not match

    def stream_mid_error(self, fault_id: str) -> list[bytes]:
        return [exception(*_MID)]

    def keepalive(self, flavor: str) -> bytes | None:
        return None  # Bedrock sends nothing while queued


def _forced_tool(tool_config: Any) -> ToolCall | None:
    """The tool to call when `toolConfig.toolChoice` is `any` or names a tool."""
    if not isinstance(tool_config, dict):
        return None
    choice = tool_config.get("toolChoice")
    if not isinstance(choice, dict) or not ({"any", "tool"} & set(choice)):
        return None
    specs = [
        t["toolSpec"]
        for t in tool_config.get("tools", [])
        if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict)
    ]
    if not specs:
        return None
    wanted = choice.get("tool", {}).get("name") if isinstance(choice.get("tool"), dict) else None
    spec = next((s for s in specs if s.get("name") == wanted), specs[0])
    schema = spec.get("inputSchema", {}).get("json") if isinstance(spec.get("inputSchema"), dict) else None
    return ToolCall(str(spec.get("name", "")), args_from_schema(schema), id="tooluse_sim_0")
