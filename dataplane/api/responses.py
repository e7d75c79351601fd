"""The OpenAI Responses API (`POST /v1/responses`, JSON and the Responses event stream; `GET /v1/responses/{id}`).

A thin client API over the pipeline (dataplane/api/pipeline.py): a target that serves the Responses API natively
(adapters/native.py) gets the request as the client wrote it; any other target (Anthropic, Gemini, an
OpenAI-compatible host without `/responses`) gets it translated to chat and back
(dataplane/api/responses_translate.py, responses_stream.py). What chat cannot express (built-in tools, item
references) is served by native targets only, and refused with a 400 naming why when the route has none.
`previous_response_id` continues a conversation Turnout stored itself (dataplane/api/responses_state.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from adapters.base import Adapter
from adapters.native import NativeResponsesAdapter, serves_responses_natively
from dataplane.api.intake import Intake, identify, intake, plan_for
from dataplane.api.pipeline import ClientStream, serve
from dataplane.api.responses_state import ResponseStore
from dataplane.api.responses_stream import ChatToResponses, NativeResponses, ResponsesChatView
from dataplane.api.responses_translate import NativeOnly, from_chat_completion, input_items, new_id, to_chat_body
from dataplane.attempts import Opened
from dataplane.http.messages import AppKey, Request, Response, StreamResponse, error_response
from dataplane.keys import openai_refusal
from dataplane.resume import ChatView, continuation_body, continuation_turns, remaining_output
from dataplane.selection import Candidate
from dataplane.state import DATA_STATE

__all__ = ["create_response", "get_response", "RESPONSE_STORE", "RESPONSES_PREFIX"]

RESPONSE_STORE: AppKey[ResponseStore] = AppKey("turnout_response_store")
RESPONSES_PREFIX = "/v1/responses/"
_STORE_SETTING = "dataplane.responses.store"


def _type(status: int) -> str:
    return "service_unavailable" if status >= 500 else "invalid_request_error"


def _refuse(status: int, message: str, code: str, param: str | None = None) -> Response:
    return error_response(status, message, _type(status), code, param=param)


class _Responses:
    """One Responses request: its native body, its chat translation (None when chat cannot express it)."""

    api = "responses"
    larger_context = True

    def __init__(
        self,
        st: Any,
        body: dict[str, Any],
        items: list[dict[str, Any]],
        chat: dict[str, Any] | None,
        native_only: str | None,
        store: ResponseStore,
    ) -> None:
        self.st, self.body, self.items, self.chat, self.native_only, self.store = (
            st,
            body,
            items,
            chat,
            native_only,
            store,
        )
        self.stream = body.get("stream") is True
        self._rid: str | None = None
        self._native_body: dict[str, Any] | None = None
        self._writer: ChatToResponses | NativeResponses | None = None
        self._answer: dict[str, Any] | None = None

    @property
    def native_body(self) -> dict[str, Any]:
        """The body for a native target: the client's, with the stored turns prepended (no upstream is asked to
        remember them)."""
        if self._native_body is None:
            native = {k: v for k, v in self.body.items() if k != "previous_response_id"}
            native["input"] = self.items
            self._native_body = native
        return self._native_body

    @property
    def rid(self) -> str:
        """The id of a translated answer (a native one keeps its upstream's), made once it is needed."""
        if self._rid is None:
            self._rid = new_id("resp")
        return self._rid

    def _native(self, cand: Candidate) -> bool:
        return serves_responses_natively(cand.provider)

    def unfit(self, cand: Candidate) -> str | None:
        if self.native_only is not None and not self._native(cand):
            return f"needs a target serving the Responses API natively: {self.native_only}"
        return None

    def call(self, cand: Candidate) -> tuple[Adapter | None, dict[str, Any]]:
        if self._native(cand):
            return NativeResponsesAdapter(self.st.adapter(cand.adapter)), self.native_body
        assert self.chat is not None
        return None, self.chat

    def answer(self, cand: Candidate, opened: Opened, trail: dict[str, Any] | None) -> bytes:
        if self._native(cand):
            self._answer = opened.response
            if trail is None and opened.body is not None:
                return opened.body  # pass-through
            out = dict(opened.response or {})
        else:
            out = self._answer = from_chat_completion(self.body, opened.response or {}, rid=self.rid)
        if trail is not None:
            out = {**out, "turnout": trail}
        return orjson.dumps(out)

    def writer(self, cand: Candidate) -> ClientStream:
        model = str(self.body.get("model") or "")
        self._writer = (
            NativeResponses() if self._native(cand) else ChatToResponses(self.body, rid=self.rid, model=model)
        )
        return self._writer

    def chat_view(self, cand: Candidate) -> ChatView | None:
        return ResponsesChatView() if self._native(cand) else None

    def continuation(self, cand: Candidate, sent: str) -> tuple[Adapter | None, dict[str, Any]]:
        if self._native(cand):
            turns = [{"type": "message", **t} for t in continuation_turns(sent, cand.adapter)]
            adapter, body = self.call(cand)
            return adapter, remaining_output({**body, "input": [*body["input"], *turns]}, sent)
        assert self.chat is not None  # a request chat cannot express has native targets only
        return None, continuation_body(self.chat, sent, cand.adapter)

    def error(
        self, status: int, message: str, *, code: str | None, headers: Mapping[str, str] | None, **extra: Any
    ) -> Response:
        return error_response(status, message, _type(status), code, headers=headers, **extra)

    def refusal(self, cand: Candidate, opened: Opened, status: int, headers: Mapping[str, str]) -> Response:
        c = opened.classification
        if cand.adapter == "openai" and opened.body and opened.body.lstrip().startswith(b"{"):
            return Response(body=opened.body, status=status, content_type="application/json", headers=headers)
        return error_response(
            status,
            c.detail or "the request was rejected by the provider",
            "invalid_request_error",
            c.code,
            headers=headers,
        )

    def finished(self, cand: Candidate, result: dict[str, Any] | None) -> None:
        final = self._answer if not self.stream else (self._writer.final if self._writer is not None else None)
        if final is not None:
            self.store.put(final, self.items)


def _conversation(got: Intake, store: ResponseStore) -> list[dict[str, Any]] | Response:
    """The input items of this turn, earlier turns first when it continues a stored response."""
    body = got.body
    prev = body.get("previous_response_id")
    try:
        items = input_items(body)
    except ValueError as exc:
        return _refuse(400, str(exc), "invalid_value", str(exc).split(":", 1)[0])
    if prev is None:
        return items
    if not isinstance(prev, str) or not prev:
        return _refuse(400, "previous_response_id: must be a response id", "invalid_value", "previous_response_id")
    if not store.enabled:
        return _refuse(
            400,
            f"previous_response_id: Turnout keeps no conversation state unless {_STORE_SETTING} is true (off by "
            "default: it stores prompts); send the whole conversation in input, or turn the setting on",
            "state_not_stored",
            "previous_response_id",
        )
    stored = store.get(prev)
    if stored is None:
        return _refuse(
            404,
            f"previous_response_id: no stored response {prev!r} (unknown, or older than dataplane.responses.retention)",
            "previous_response_not_found",
            "previous_response_id",
        )
    return [*stored.conversation, *items]


async def create_response(request: Request) -> Response | StreamResponse:
    """`POST /v1/responses`."""
    got = await intake(request, _refuse, openai_refusal)
    if isinstance(got, Response):
        return got
    body = got.body
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return _refuse(400, "stream: expected true or false", "invalid_value", "stream")
    plan = plan_for(got, _refuse, kind="chat", api="Responses")
    if isinstance(plan, Response):
        return plan
    store = request.app[RESPONSE_STORE]
    items = _conversation(got, store)
    if isinstance(items, Response):
        return items
    chat: dict[str, Any] | None
    native_only: str | None = None
    try:
        chat = to_chat_body(body, items)
        if stream:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}  # cost accounting reads it
    except NativeOnly as exc:
        chat, native_only = None, exc.reason
    except ValueError as exc:
        return _refuse(400, str(exc), "invalid_value", str(exc).split(":", 1)[0])
    return await serve(request, got, _Responses(got.st, body, items, chat, native_only, store), plan)


async def get_response(request: Request) -> Response:
    """`GET /v1/responses/{id}`: a response Turnout stored (a client key is asked for as on every client API)."""
    caller = await identify(request.app[DATA_STATE], request.headers, openai_refusal)
    if isinstance(caller, Response):
        return caller
    store = request.app[RESPONSE_STORE]
    rid = request.path[len(RESPONSES_PREFIX) :]
    if not store.enabled:
        return _refuse(
            400, f"Turnout stores no responses unless {_STORE_SETTING} is true (off by default)", "state_not_stored"
        )
    stored = store.get(rid)
    if stored is None:
        return _refuse(
            404, f"no stored response {rid!r} (unknown, or older than dataplane.responses.retention)", "not_found"
        )
    return Response(orjson.dumps(stored.response))
