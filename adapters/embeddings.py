"""Embeddings in the OpenAI shape (`POST /embeddings`), spoken to each family that has them.

OpenAI-compatible hosts get the body as the client wrote it (only `model` replaced); Gemini's
`batchEmbedContents` is translated both ways (adapters/gemini.py), with `encoding_format: base64` applied
here, as OpenAI does it: the little-endian float32 bytes of each vector. Anthropic has no embeddings API.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from adapters import gemini
from adapters.base import ProbeAdapter, StreamTranslator, UpstreamRequest
from adapters.native import Delegating, bad_answer, openai_headers, openai_url
from adapters.wire.common import json_or_none

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = ["EMBEDDING_FAMILIES", "EmbeddingsAdapter", "embeddings_adapter", "encode_answer", "as_base64", "probe_body"]

EMBEDDING_FAMILIES = ("openai", "gemini")
_TURNOUT_KEYS = ("turnout",)


def as_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def probe_body(model: str) -> dict[str, Any]:
    """The cheapest embedding call: one word."""
    return {"model": model, "input": "ok", "encoding_format": "float"}


def _check(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list) or not doc["data"]:
        raise bad_answer("embeddings answer without data[]")
    for i, row in enumerate(doc["data"]):
        vec = row.get("embedding") if isinstance(row, dict) else None
        if not (isinstance(vec, list) and vec) and not (isinstance(vec, str) and vec):
            raise bad_answer(f"embeddings answer: data[{i}] without an embedding")
    return doc


class EmbeddingsAdapter(Delegating):
    """A family adapter speaking the embeddings endpoint (JSON only: embeddings do not stream)."""

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        if self.name == "gemini":
            return gemini.embed_request(provider, model, body)
        out = {k: v for k, v in body.items() if k not in _TURNOUT_KEYS}
        out["model"] = model
        return UpstreamRequest(
            "POST", openai_url(provider, "/embeddings"), openai_headers(provider, False), orjson.dumps(out)
        )

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        doc = json_or_none(body)
        if self.name == "gemini":
            return gemini.from_embed_response(doc, model)
        return _check(doc)

    def stream_translator(self, *, model: str) -> StreamTranslator:
        raise TypeError("embeddings do not stream")


def embeddings_adapter(inner: ProbeAdapter) -> EmbeddingsAdapter:
    """The embeddings speaker for a family adapter; ValueError for a family without embeddings."""
    if inner.name not in EMBEDDING_FAMILIES:
        raise ValueError(f"the {inner.name} API has no embeddings endpoint")
    return EmbeddingsAdapter(inner)


def encode_answer(doc: Mapping[str, Any], encoding_format: str) -> dict[str, Any]:
    """The answer in the encoding the client asked for (a pass-through answer already is)."""
    if encoding_format != "base64":
        return dict(doc)
    data = [
        {**row, "embedding": as_base64(row["embedding"])} if isinstance(row.get("embedding"), list) else row
        for row in doc["data"]
    ]
    return {**doc, "data": data}
