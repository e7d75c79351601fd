"""Where every non-chat client API request starts: the one place that reads the body, the caller's credential and
preferences, and finds the route, each refusal written in the shape of the API the client spoke.

`intake` is the single entry point of the Responses, Messages, count_tokens and embeddings handlers: a check
that every one of them must make (a client key, a limit) goes here once. The caller's credential arrives as
`Authorization: Bearer …` (OpenAI SDKs) or `x-api-key` (Anthropic SDKs); `credential` reads either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from dataplane.http.messages import Request, Response
from dataplane.preferences import PreferenceError, Preferences, parse_preferences
from dataplane.selection import Plan
from dataplane.state import DATA_STATE, DataPlaneState

__all__ = ["Refuse", "Intake", "intake", "credential", "plan_for", "route_kind"]

# How an API writes a refusal: (status, message, code, param) → its error answer.
Refuse = Callable[[int, str, str, "str | None"], Response]


@dataclass(slots=True)
class Intake:
    """A request that passed the common checks: its state, its JSON body, its preferences, when it started."""

    st: DataPlaneState
    body: dict[str, Any]
    prefs: Preferences
    t0: float


def credential(headers: Mapping[str, str]) -> str | None:
    """The caller's key: `Authorization: Bearer <key>` or `x-api-key: <key>` (None when neither is sent)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return headers.get("x-api-key") or None


_kinds: tuple[object, dict[str, str | None]] = (None, {})  # (config, name → kind): recomputed after a reload


def route_kind(st: DataPlaneState, name: str) -> str | None:
    """`chat` or `embedding` for a route or target name (None: unknown), looked up once per config."""
    global _kinds
    cfg = st.rt.config
    if _kinds[0] is not cfg:
        _kinds = (cfg, {})
    memo = _kinds[1]
    if name not in memo:
        memo[name] = cfg.route_kind(name)
    return memo[name]


def intake(request: Request, refuse: Refuse, *, body_required: bool = True) -> Intake | Response:
    """The common start of a client API request, or the refusal (in the client's shape) that ends it."""
    st = request.app[DATA_STATE]
    st.config()
    t0 = st.rt.clock.monotonic()
    body: Any = {}
    if body_required or request.body:
        try:  # the listener has read the whole body and held it to server.max_body_bytes (413 otherwise)
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            return refuse(400, f"body: not valid JSON ({exc.msg} at position {exc.pos})", "invalid_value", "body")
        if not isinstance(body, dict):
            return refuse(400, "body: expected a JSON object", "invalid_value", "body")
    try:
        prefs = parse_preferences(body, request.headers)
    except PreferenceError as exc:
        return refuse(400, f"{exc.field}: {exc.problem}", "invalid_value", exc.field)
    return Intake(st, body, prefs, t0)


def plan_for(got: Intake, refuse: Refuse, *, kind: str, api: str) -> Plan | Response:
    """The plan for the body's `model`, or the refusal: no model, an unknown name, a route of the other kind
    (chat vs embedding), or a panel route (panels answer chat completions only)."""
    st, body = got.st, got.body
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return refuse(400, "model: required: a route name or provider/model", "invalid_value", "model")
    kind_of = route_kind(st, model)
    route = st.routes.get(model)
    if route is not None and route.mode == "panel":
        return refuse(
            400,
            f"model: route {model!r} is a panel route, which answers POST /v1/chat/completions only, not the {api} API",
            "unsupported_route",
            "model",
        )
    if kind_of is not None and kind_of != kind:
        use = "POST /v1/embeddings" if kind_of == "embedding" else "a chat API (chat completions, Responses, Messages)"
        return refuse(
            400,
            f"model: {model!r} serves {kind_of} models, which the {api} API cannot use; call it with {use}",
            "unsupported_route",
            "model",
        )
    plan = st.selector.plan(st.table(), model, got.prefs)  # local ejections applied (dataplane/ejection.py)
    if plan is None:
        known = ", ".join(st.selector.models()) or "(none)"
        return refuse(
            404,
            f"model {model!r} is neither a route nor a provider/model target; routes: {known}",
            "model_not_found",
            "model",
        )
    return plan
