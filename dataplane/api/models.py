"""`GET /v1/models`: the routes clients may name as `model`, in OpenAI's list shape, or in Anthropic's when the
caller sends `anthropic-version` (what the Anthropic SDKs send on every call)."""

from __future__ import annotations

import orjson

from dataplane.http.messages import Request, Response
from dataplane.state import DATA_STATE

__all__ = ["list_models"]


async def list_models(request: Request) -> Response:
    st = request.app[DATA_STATE]
    cfg = st.config()
    if "anthropic-version" not in request.headers:
        return Response(st.models_body)
    names = [r.name for r in cfg.routes]
    data = [{"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"} for n in names]
    body = {
        "data": data,
        "has_more": False,
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }
    return Response(orjson.dumps(body))
