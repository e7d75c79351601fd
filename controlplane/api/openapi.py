"""The OpenAPI 3.1 document, generated from the route table (`Operation`s) and the pydantic models.

One list of operations drives both the router and this document, so they cannot drift apart; the
schemathesis test then checks real responses against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from controlplane.api.schemas import ErrorResponse

__all__ = ["Param", "Operation", "build_document"]

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["query", "path"]
    schema: dict[str, Any]
    required: bool = False
    description: str = ""
    explode: bool | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP operation: the router registers `handler`; the document describes the rest."""

    method: str
    path: str  # OpenAPI form: /api/v1/targets/{provider}/{model}
    op_id: str
    summary: str
    tag: str
    scope: Literal["read", "admin"] | None  # None: no auth at all (health checks, the document itself)
    responses: dict[int, type[BaseModel] | None]
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = True
    handler: Any = field(default=None, compare=False)
    response_headers: dict[int, dict[str, str]] = field(default_factory=dict)


_ERROR_TEXT = {
    400: "Malformed request (bad JSON, bad parameter)",
    401: "Missing or invalid bearer token",
    403: "Token lacks the needed scope",
    404: "Not found",
    409: "Conflict with the current state",
    422: "Invalid field or parameter (named in error.field)",
    503: "Not ready",
}


def _error_codes(op: Operation, public_read: bool) -> list[int]:
    codes = [400]
    if op.scope == "admin" or (op.scope == "read" and not public_read):
        codes += [401, 403]
    elif op.scope == "read":
        codes += [401]  # a token that is sent must be valid
    if any(p.where == "path" for p in op.params):
        codes.append(404)
    if op.params or op.body is not None:
        codes.append(422)
    return codes


def build_document(
    ops: list[Operation], *, public_read: bool, title: str = "Turnout status API", version: str = "1"
) -> dict[str, Any]:
    """An OpenAPI 3.1 document for `ops`; read operations are marked optional-auth when reads are public."""
    models: set[type[BaseModel]] = {ErrorResponse}
    for op in ops:
        models.update(m for m in op.responses.values() if m is not None)
        if op.body is not None:
            models.add(op.body)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, top = models_json_schema([(m, "serialization") for m in ordered], ref_template=_REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        spec: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary, "tags": [op.tag], "responses": {}}
        if op.scope == "admin" or (op.scope == "read" and not public_read):
            spec["security"] = [{"bearer": []}]
        elif op.scope == "read":
            spec["security"] = [{}, {"bearer": []}]
        else:
            spec["security"] = []
        if op.params:
            spec["parameters"] = []
            for p in op.params:
                entry: dict[str, Any] = {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "schema": p.schema,
                }
                if p.description:
                    entry["description"] = p.description
                if p.explode is not None:
                    entry["style"], entry["explode"] = "form", p.explode
                spec["parameters"].append(entry)
        if op.body is not None:
            spec["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": {"$ref": _REF.format(model=op.body.__name__)}}},
            }
        for code, model in op.responses.items():
            resp: dict[str, Any] = {
                "description": "OK"
                if code < 300
                else ("Not modified" if code == 304 else _ERROR_TEXT.get(code, "Error"))
            }
            if model is not None:
                resp["content"] = {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}
            if code in op.response_headers:
                resp["headers"] = {
                    h: {"description": d, "schema": {"type": "string"}} for h, d in op.response_headers[code].items()
                }
            spec["responses"][str(code)] = resp
        for code in _error_codes(op, public_read):
            spec["responses"].setdefault(
                str(code),
                {
                    "description": _ERROR_TEXT[code],
                    "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}},
                },
            )
        paths.setdefault(op.path, {})[op.method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Turnout's view of LLM provider health: the ranked table, targets, routes, events, uptime, "
            "operator overrides and failover webhooks. Auth: `Authorization: Bearer <token>` (scopes read, admin).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token from config auth.tokens"}
            },
        },
    }
