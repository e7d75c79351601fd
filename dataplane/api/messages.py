"""The Anthropic Messages API inbound: `POST /v1/messages` (JSON and Anthropic's event stream) and
`POST /v1/messages/count_tokens`, with errors in Anthropic's shape.

A thin client API over the pipeline (dataplane/api/pipeline.py): an Anthropic target gets the request as the
client wrote it (adapters/native.py); OpenAI-compatible and Gemini targets get it translated to chat and back
(dataplane/api/messages_translate.py, messages_stream.py). count_tokens asks an Anthropic target, or Gemini's
countTokens; an OpenAI-compatible target has no such endpoint, so it is skipped (and a route with nothing else
gets a 400 saying so). `anthropic-version` is accepted as clients send it; upstream calls carry the provider's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from adapters.base import Adapter, StreamTranslator, UpstreamRequest
from adapters.gemini import to_generate_request
from adapters.native import Delegating, NativeCountTokensAdapter, NativeMessagesAdapter, bad_answer
from adapters.wire.common import json_or_none
from controlplane.config import ProviderConfig
from dataplane.api.intake import intake, plan_for
from dataplane.api.messages_stream import ChatToMessages, MessagesChatView, NativeMessages
from dataplane.api.messages_translate import error_body, error_type, from_chat_completion, to_chat_body
from dataplane.api.pipeline import ClientStream, JsonOnly, serve
from dataplane.api.responses_translate import item_id
from dataplane.attempts import Opened
from dataplane.http.messages import Request, Response, StreamResponse
from dataplane.keys import anthropic_refusal
from dataplane.resume import ChatView, continuation_body, continuation_turns, remaining_output
from dataplane.selection import Candidate

__all__ = ["create_message", "count_tokens", "anthropic_error"]


def anthropic_error(status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    return Response(error_body(error_type(status), message, **extra), status=status, headers=headers)


def _refuse(status: int, message: str, code: str, param: str | None = None) -> Response:
    return anthropic_error(status, message)


class _MessagesBase:
    """What Messages and count_tokens share: Anthropic's error shape, pass-through to Anthropic targets."""

    larger_context = True
    stream = False

    def __init__(self, st: Any, body: dict[str, Any]) -> None:
        self.st, self.body = st, body

    def error(
        self, status: int, message: str, *, code: str | None, headers: Mapping[str, str] | None, **extra: Any
    ) -> Response:
        return anthropic_error(status, message, headers, **extra)

    def refusal(self, cand: Candidate, opened: Opened, status: int, headers: Mapping[str, str]) -> Response:
        if cand.adapter == "anthropic" and opened.body and opened.body.lstrip().startswith(b"{"):
            return Response(body=opened.body, status=status, content_type="application/json", headers=headers)
        c = opened.classification
        return anthropic_error(status, c.detail or "the request was rejected by the provider", headers)

    def finished(self, cand: Candidate, result: dict[str, Any] | None) -> None:
        return None


class _Messages(_MessagesBase):
    api = "messages"

    def __init__(self, st: Any, body: dict[str, Any], chat: dict[str, Any]) -> None:
        super().__init__(st, body)
        self.chat = chat
        self.stream = body.get("stream") is True
        self.mid = item_id("msg")

    def unfit(self, cand: Candidate) -> str | None:
        return None

    def call(self, cand: Candidate) -> tuple[Adapter | None, dict[str, Any]]:
        if cand.adapter == "anthropic":
            return NativeMessagesAdapter(self.st.adapter(cand.adapter)), self.body
        return None, self.chat

    def answer(self, cand: Candidate, opened: Opened, trail: dict[str, Any] | None) -> bytes:
        if cand.adapter == "anthropic":
            if trail is None and opened.body is not None:
                return opened.body  # pass-through
            out = dict(opened.response or {})
        else:
            out = from_chat_completion(opened.response or {}, mid=self.mid, model=str(self.body.get("model")))
        if trail is not None:
            out["turnout"] = trail
        return orjson.dumps(out)

    def writer(self, cand: Candidate) -> ClientStream:
        if cand.adapter == "anthropic":
            return NativeMessages()
        return ChatToMessages(mid=self.mid, model=str(self.body.get("model")))

    def chat_view(self, cand: Candidate) -> ChatView | None:
        return MessagesChatView() if cand.adapter == "anthropic" else None

    def continuation(self, cand: Candidate, sent: str) -> tuple[Adapter | None, dict[str, Any]]:
        if cand.adapter == "anthropic":  # a prefill: the answer so far as the last assistant turn
            adapter, body = self.call(cand)
            turns = continuation_turns(sent, cand.adapter)
            return adapter, remaining_output({**body, "messages": [*body["messages"], *turns]}, sent)
        return None, continuation_body(self.chat, sent, cand.adapter)


class _GeminiCountTokens(Delegating):
    """Gemini's `countTokens` for a Messages body (translated through chat)."""

    def __init__(self, inner: Adapter, chat: dict[str, Any]) -> None:
        super().__init__(inner)
        self._chat = chat

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        req = to_generate_request(self._chat)
        contents = {"contents": req["contents"]}
        if "systemInstruction" in req:  # countTokens takes the system text as generateContentRequest only
            contents = {"generateContentRequest": {"model": f"models/{model}", **req}}
        headers = {"content-type": "application/json"}
        if provider.api_key:
            headers["x-goog-api-key"] = provider.api_key.get_secret_value()
        headers.update(provider.headers)
        url = f"{provider.base_url}/models/{model.removeprefix('models/')}:countTokens"
        return UpstreamRequest("POST", url, headers, orjson.dumps(contents))

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        doc = json_or_none(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("totalTokens"), int):
            raise bad_answer("countTokens answer without totalTokens")
        return {"input_tokens": doc["totalTokens"]}

    def stream_translator(self, *, model: str) -> StreamTranslator:
        raise TypeError("countTokens does not stream")


class _CountTokens(JsonOnly, _MessagesBase):
    api = "count_tokens"

    def __init__(self, st: Any, body: dict[str, Any], chat: dict[str, Any]) -> None:
        super().__init__(st, body)
        self.chat = chat

    def unfit(self, cand: Candidate) -> str | None:
        if cand.adapter in ("anthropic", "gemini"):
            return None
        return f"the {cand.adapter} API has no token-counting endpoint"

    def call(self, cand: Candidate) -> tuple[Adapter | None, dict[str, Any]]:
        inner = self.st.adapter(cand.adapter)
        if cand.adapter == "anthropic":
            return NativeCountTokensAdapter(inner), self.body
        return _GeminiCountTokens(inner, self.chat), self.chat

    def answer(self, cand: Candidate, opened: Opened, trail: dict[str, Any] | None) -> bytes:
        out: dict[str, Any] = {"input_tokens": (opened.response or {}).get("input_tokens", 0)}
        if trail is not None:
            out["turnout"] = trail
        return orjson.dumps(out)


async def create_message(request: Request) -> Response | StreamResponse:
    """`POST /v1/messages`."""
    got = await intake(request, _refuse, anthropic_refusal)
    if isinstance(got, Response):
        return got
    body = got.body
    if not isinstance(body.get("stream", False), bool):
        return anthropic_error(400, "stream: expected true or false")
    plan = plan_for(got, _refuse, kind="chat", api="Messages")
    if isinstance(plan, Response):
        return plan
    try:
        chat = to_chat_body(body)
    except ValueError as exc:
        return anthropic_error(400, str(exc))
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # cost accounting reads it
    return await serve(request, got, _Messages(got.st, body, chat), plan)


async def count_tokens(request: Request) -> Response | StreamResponse:
    """`POST /v1/messages/count_tokens`."""
    got = await intake(request, _refuse, anthropic_refusal)
    if isinstance(got, Response):
        return got
    body = got.body
    plan = plan_for(got, _refuse, kind="chat", api="Messages count_tokens")
    if isinstance(plan, Response):
        return plan
    try:
        chat = to_chat_body({**body, "max_tokens": 1})  # count_tokens takes no max_tokens; the translation needs one
    except ValueError as exc:
        return anthropic_error(400, str(exc))
    return await serve(request, got, _CountTokens(got.st, body, chat), plan)
