"""Where every non-chat client API request starts: the one place that reads the body, the caller's credential and
preferences, and finds the route, each refusal written in the shape of the API the client spoke.

`intake` is the single entry point of the Responses, Messages, count_tokens and embeddings handlers: a check
that every one of them must make goes here once. The client key (dataplane/keys.py: `Authorization: Bearer …`
from OpenAI SDKs, `x-api-key` from Anthropic SDKs) is checked first, before the body is read (401); `plan_for`
admits the caller to the route once it is known (403 for a route the key may not use, 429 over a limit or the
budget), and the pipeline settles its tokens and spend when the request ends. `identify` and `admit` are the
same two steps chat completions (dataplane/api/chat.py) takes, each refusal in the shape of the client's API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from dataplane.http.messages import Request, Response
from dataplane.keys import Admission, Caller, Refusal
from dataplane.preferences import PreferenceError, Preferences, parse_preferences
from dataplane.selection import Plan
from dataplane.state import DATA_STATE, DataPlaneState

__all__ = ["Refuse", "Shape", "Intake", "intake", "identify", "admit", "plan_for", "route_kind"]

# How an API writes a refusal: (status, message, code, param) → its error answer.
Refuse = Callable[[int, str, str, "str | None"], Response]
# How an API writes a client-key refusal (dataplane.keys.openai_refusal or anthropic_refusal).
Shape = Callable[[Refusal], Response]


@dataclass(slots=True)
class Intake:
    """A request that passed the common checks: its state, its JSON body, its preferences, when it started, the
    caller's key (None: keys not required) and, once `plan_for` found the route, its admission."""

    st: DataPlaneState
    body: dict[str, Any]
    prefs: Preferences
    t0: float
    shape: Shape
    caller: Caller | None = None
    admission: Admission | None = None


async def identify(st: DataPlaneState, headers: Mapping[str, str], shape: Shape) -> Caller | Response | None:
    """The caller behind the request's client key, None when keys are not required, or the 401 in `shape`."""
    caller = await st.keys.identify(headers)
    return st.refused(caller, shape) if isinstance(caller, Refusal) else caller


def admit(st: DataPlaneState, caller: Caller | None, model: str, shape: Shape) -> Admission | Response | None:
    """May `caller` use `model` now: its admission (rate-limit headers, settled when the request ends), None for an
    anonymous caller, or the 403/429 in `shape`. A refusal happens before any upstream attempt, so a key's own
    limits never reach a provider's breaker."""
    if caller is None:
        return None
    admission = st.keys.admit(caller, model)
    return st.refused(admission, shape) if isinstance(admission, Refusal) else admission


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


async def intake(request: Request, refuse: Refuse, shape: Shape, *, body_required: bool = True) -> Intake | Response:
    """The common start of a client API request, or the refusal (in the client's shape) that ends it: `refuse`
    writes a bad request, `shape` a client-key refusal."""
    st = request.app[DATA_STATE]
    st.config()
    t0 = st.rt.clock.monotonic()
    caller = await identify(st, request.headers, shape)  # 401 before the body is even read
    if isinstance(caller, Response):
        return caller
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
    return Intake(st, body, prefs, t0, shape, caller)


def plan_for(got: Intake, refuse: Refuse, *, kind: str, api: str) -> Plan | Response:
    """The plan for the body's `model`, or the refusal: no model, an unknown name, a route of the other kind
    (chat vs embedding), a panel route (panels answer chat completions only), or the client key's (403, 429).
    An admitted request's admission is left in `got.admission` for the pipeline."""
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
    admission = admit(st, got.caller, model, got.shape)  # 403 route, 429 limits and budget
    if isinstance(admission, Response):
        return admission
    got.admission = admission
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
