"""HTTP plumbing shared by the API handlers: JSON responses, JSON errors naming the field, parameter parsing."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

__all__ = ["ApiError", "json_response", "error_response", "int_param", "float_param", "choice_param", "read_body"]

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error answer: status, machine code, message for people, and the offending field when known."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(
        {"error": {"status": status, "code": code, "message": message, "field": field}}, status, headers
    )


def _raw(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiError(422, "invalid_parameter", f"parameter {name!r} given more than once", name)
    return values[0] if values else None


def int_param(
    request: web.Request, name: str, *, minimum: int, maximum: int | None = None, default: int | None = None
) -> int | None:
    raw = _raw(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_parameter", f"{name} must be an integer, got {raw[:40]!r}", name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ApiError(422, "invalid_parameter", f"{name} must be {bound}, got {value}", name)
    return value


def float_param(request: web.Request, name: str, *, minimum: float, maximum: float) -> float | None:
    raw = _raw(request, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(422, "invalid_parameter", f"{name} must be a number, got {raw[:40]!r}", name) from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise ApiError(
            422, "invalid_parameter", f"{name} must be between {minimum:g} and {maximum:g}, got {raw[:40]!r}", name
        )
    return value


def choice_param(request: web.Request, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
    raw = _raw(request, name)
    if raw is None:
        return default
    if raw not in choices:
        raise ApiError(422, "invalid_parameter", f"{name} must be one of {', '.join(choices)}, got {raw[:40]!r}", name)
    return raw


async def read_body(request: web.Request, model: type[M], *, required: bool = True) -> M:
    """Parse and validate a JSON body: 400 when it is not JSON, 422 naming the first invalid field."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError(400, "missing_body", "a JSON object body is required")
        return model()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        msg = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = f"unknown field {field!r}"
        raise ApiError(422, "invalid_field", f"{field}: {msg}" if field else msg, field) from None
