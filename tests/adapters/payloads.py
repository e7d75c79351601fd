"""Real-shaped provider payloads (provider-semantics.md §2, §7), built from the same templates the simulator uses."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["oa", "an", "gg", "js"]


def js(doc: Any) -> bytes:
    return orjson.dumps(doc)


def oa(type_: str | None, code: str | None, msg: str, *, param: str | None = None, **extra: Any) -> bytes:
    """OA(S,type,code,msg) = {"error":{"message","type","param","code"}}."""
    err: dict[str, Any] = {"message": msg, "type": type_, "param": param, "code": code}
    err.update(extra)
    return js({"error": err})


def an(type_: str, msg: str, **extra: Any) -> bytes:
    """AN(S,type,msg) = {"type":"error","error":{"type","message"},"request_id"}."""
    err: dict[str, Any] = {"type": type_, "message": msg}
    err.update(extra)
    return js({"type": "error", "error": err, "request_id": "req_sim"})


def gg(code: int, status: str, msg: str, details: list[dict[str, Any]] | None = None, **extra: Any) -> bytes:
    """GG(S,STATUS,msg,details?) = {"error":{"code","message","status","details"}}."""
    err: dict[str, Any] = {"code": code, "message": msg, "status": status}
    if details is not None:
        err["details"] = details
    err.update(extra)
    return js({"error": err})
