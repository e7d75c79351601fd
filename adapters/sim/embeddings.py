"""Simulated embeddings: deterministic vectors, in the OpenAI (`/v1/embeddings`) and Gemini (`:embedContent`,
`:batchEmbedContents`) shapes.

A vector depends only on the model name and the text, so two providers serving one model give the same
vectors (failover between them changes nothing a retrieval index can see), and two models give different ones.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

from adapters.sim.chat import BadRequest, estimate_tokens

__all__ = ["DEFAULT_DIMENSIONS", "vector", "openai_inputs", "openai_answer", "gemini_inputs", "gemini_answer"]

DEFAULT_DIMENSIONS = 16


def vector(model: str, text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A unit-length vector of `dimensions` floats seeded by (model, text)."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 4:
        raw += hashlib.sha256(f"{model}\x00{text}\x00{counter}".encode()).digest()
        counter += 1
    ints = struct.unpack(f"<{dimensions}i", raw[: dimensions * 4])
    vals = [i / 2**31 for i in ints]
    norm = sum(v * v for v in vals) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vals]


def _dims(value: Any, name: str) -> int:
    if value is None:
        return DEFAULT_DIMENSIONS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise BadRequest(f"{name} must be an integer between 1 and 4096, got {value!r}", name)
    return value


def openai_inputs(body: Any) -> tuple[str, list[str], int, str]:
    """(model, texts, dimensions, encoding_format) of an OpenAI embeddings request."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    raw = body.get("input")
    texts: list[str]
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw):
        texts = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
        texts = [" ".join(map(str, raw))]  # one token array
    elif isinstance(raw, list) and raw and all(isinstance(t, list) for t in raw):
        texts = [" ".join(map(str, t)) for t in raw]
    else:
        raise BadRequest("'input' must be a string, a list of strings or token arrays", "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise BadRequest(f"encoding_format must be float or base64, got {fmt!r}", "encoding_format")
    return model, texts, _dims(body.get("dimensions"), "dimensions"), str(fmt)


def openai_answer(model: str, texts: list[str], dimensions: int, fmt: str) -> dict[str, Any]:
    data = []
    for i, text in enumerate(texts):
        vec = vector(model, text, dimensions)
        emb: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vec)).decode() if fmt == "base64" else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = sum(estimate_tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _content_text(content: Any, where: str) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"{where}.parts must be a non-empty list", where)
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def gemini_inputs(body: Any, batch: bool) -> list[tuple[str, int]]:
    """(text, dimensions) per requested embedding of an embedContent / batchEmbedContents request."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    reqs = body.get("requests") if batch else [body]
    if not isinstance(reqs, list) or not reqs:
        raise BadRequest("requests must be a non-empty list", "requests")
    out = []
    for i, r in enumerate(reqs):
        if not isinstance(r, dict):
            raise BadRequest(f"requests[{i}] must be an object", "requests")
        out.append(
            (
                _content_text(r.get("content"), f"requests[{i}].content"),
                _dims(r.get("outputDimensionality"), "outputDimensionality"),
            )
        )
    return out


def gemini_answer(model: str, rows: list[tuple[str, int]], batch: bool) -> dict[str, Any]:
    vecs = [{"values": vector(model, text, dims)} for text, dims in rows]
    return {"embeddings": vecs} if batch else {"embedding": vecs[0]}
