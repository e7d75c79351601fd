from __future__ import annotations

from typing import Any

from controlplane.config import ModelConfig, ProviderConfig


def provider(adapter: str, base_url: str, **fields: Any) -> ProviderConfig:
    """A provider config with one model, as the config loader would build it."""
    fields.setdefault("api_key", "sk-test-secret-key-123456")
    return ProviderConfig(
        id=fields.pop("id", adapter), adapter=adapter, base_url=base_url, models=[ModelConfig(name="m")], **fields
    )
