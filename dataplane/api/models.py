"""`GET /v1/models`: the routes clients may name as `model` (a client key limited to some routes sees only those),
in OpenAI's list shape, or in Anthropic's when the caller sends `anthropic-version` (what the Anthropic SDKs send on
every call)."""

from __future__ import annotations

import orjson

from dataplane.http.messages import Request, Response
from dataplane.keys import Refusal, anthropic_refusal, openai_refusal
from dataplane.state import DATA_STATE

__all__ = ["list_models"]


async def list_models(request: Request) -> Response:
    st = request.app[DATA_STATE]
    cfg = st.config()
    anthropic = "anthropic-version" in request.headers
    caller = await st.keys.identify(request.headers)  # 401 once keys are asked for; a key lists its own routes
    if isinstance(caller, Refusal):
        return st.refused(caller, anthropic_refusal if anthropic else openai_refusal)
    restricted = caller is not None and caller.key.routes is not None
    names = st.keys.allowed(caller, [r.name for r in cfg.routes]) if restricted else [r.name for r in cfg.routes]
    if not anthropic:
        if not restricted:
            return Response(st.models_body)
        models = [{"id": n, "object": "model", "created": 0, "owned_by": "turnout"} for n in names]
        return Response(orjson.dumps({"object": "list", "data": models}))
    data = [{"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"} for n in names]
    body = {
        "data": data,
        "has_more": False,
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }
    return Response(orjson.dumps(body))
