"""The adapters by name: `openai` (every OpenAI-compatible host), `anthropic`, `gemini`, and the region-pinned
clouds `bedrock`, `vertex`, `azure` (their credentials libraries are imported only when a request needs them)."""

from __future__ import annotations

from adapters.anthropic import AnthropicAdapter
from adapters.azure import AzureAdapter
from adapters.base import Adapter
from adapters.bedrock import BedrockAdapter
from adapters.gemini import GeminiAdapter
from adapters.openai import OpenAIAdapter
from adapters.vertex import VertexAdapter

__all__ = ["ADAPTERS", "get_adapter"]

# One stateless instance per family; streams get their own translator objects.
ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
    "bedrock": BedrockAdapter(),
    "vertex": VertexAdapter(),
    "azure": AzureAdapter(),
}


def get_adapter(name: str) -> Adapter:
    """The adapter for `name`; KeyError naming the known adapters otherwise."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown adapter {name!r}; known: {', '.join(ADAPTERS)}") from None
