"""`POST /v1/embeddings` (OpenAI shape: `input` a string or a list, `dimensions`, `encoding_format` float/base64).

A thin client API over the pipeline (dataplane/api/pipeline.py). Embeddings of different models are not
interchangeable, so an embedding route holds one model's targets (controlplane/config.py checks it) and fails
over only between them. OpenAI-compatible targets get the body as the client wrote it; Gemini's
batchEmbedContents is translated (adapters/embeddings.py, adapters/gemini.py), and base64 is encoded here for it.
Token arrays as input are served only by OpenAI-compatible targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from adapters.base import Adapter
from adapters.embeddings import embeddings_adapter, encode_answer
from dataplane.api.intake import intake, plan_for
from dataplane.api.pipeline import JsonOnly, serve
from dataplane.attempts import Opened
from dataplane.http.messages import Request, Response, StreamResponse, error_response
from dataplane.keys import openai_refusal
from dataplane.selection import Candidate

__all__ = ["create_embeddings"]


def _refuse(status: int, message: str, code: str, param: str | None = None) -> Response:
    return error_response(
        status, message, "service_unavailable" if status >= 500 else "invalid_request_error", code, param=param
    )


def _check(body: Mapping[str, Any]) -> str | None:
    """The first bad field of an embeddings body, as `field: problem`."""
    raw = body.get("input")
    texts = isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw))
    tokens = (
        isinstance(raw, list)
        and raw
        and all(
            (isinstance(t, int) and not isinstance(t, bool))
            or (isinstance(t, list) and t and all(isinstance(i, int) for i in t))
            for t in raw
        )
    )
    if not texts and not tokens:
        return "input: required: a string, a non-empty list of strings, or token arrays"
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        return f"dimensions: must be a positive integer, got {dims!r}"
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        return f"encoding_format: must be float or base64, got {fmt!r}"
    return None


class _Embeddings(JsonOnly):
    api = "embeddings"
    stream = False
    larger_context = False

    def __init__(self, st: Any, body: dict[str, Any]) -> None:
        self.st, self.body = st, body
        self.encoding = str(body.get("encoding_format", "float"))
        raw = body.get("input")
        self.token_input = isinstance(raw, list) and not isinstance(raw[0], str)

    def unfit(self, cand: Candidate) -> str | None:
        if self.token_input and cand.adapter != "openai":
            return f"token arrays as input are embedded by OpenAI-compatible targets only, not {cand.adapter}"
        return None

    def call(self, cand: Candidate) -> tuple[Adapter | None, dict[str, Any]]:
        return embeddings_adapter(self.st.adapter(cand.adapter)), self.body

    def answer(self, cand: Candidate, opened: Opened, trail: dict[str, Any] | None) -> bytes:
        if cand.adapter == "openai" and trail is None and opened.body is not None:
            return opened.body  # pass-through: already in the encoding the client asked for
        out = encode_answer(opened.response or {}, self.encoding)
        out["model"] = str(self.body.get("model"))
        if trail is not None:
            out["turnout"] = trail
        return orjson.dumps(out)

    def error(
        self, status: int, message: str, *, code: str | None, headers: Mapping[str, str] | None, **extra: Any
    ) -> Response:
        kind = "service_unavailable" if status >= 500 else "invalid_request_error"
        return error_response(status, message, kind, code, headers=headers, **extra)

    def refusal(self, cand: Candidate, opened: Opened, status: int, headers: Mapping[str, str]) -> Response:
        if cand.adapter == "openai" and opened.body and opened.body.lstrip().startswith(b"{"):
            return Response(body=opened.body, status=status, content_type="application/json", headers=headers)
        c = opened.classification
        return error_response(
            status,
            c.detail or "the request was rejected by the provider",
            "invalid_request_error",
            c.code,
            headers=headers,
        )

    def finished(self, cand: Candidate, result: dict[str, Any] | None) -> None:
        return None


async def create_embeddings(request: Request) -> Response | StreamResponse:
    """`POST /v1/embeddings`."""
    got = await intake(request, _refuse, openai_refusal)
    if isinstance(got, Response):
        return got
    plan = plan_for(got, _refuse, kind="embedding", api="embeddings")
    if isinstance(plan, Response):
        return plan
    problem = _check(got.body)
    if problem is not None:
        return _refuse(400, problem, "invalid_value", problem.split(":", 1)[0])
    return await serve(request, got, _Embeddings(got.st, got.body), plan)
