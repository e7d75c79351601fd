from __future__ import annotations

from typing import Any

from controlplane.config import ModelConfig, ProviderConfig

# What the region-pinned clouds need beside a base URL (their credentials are signed or fetched, not an api_key).
CLOUD_FIELDS: dict[str, dict[str, Any]] = {
    "bedrock": {"region": "eu-central-1", "aws_access_key_id": "AKIDTEST", "aws_secret_access_key": "test-secret"},
    "vertex": {"region": "europe-west4", "project": "test-project"},
}


def provider(adapter: str, base_url: str, **fields: Any) -> ProviderConfig:
    """A provider config with one model, as the config loader would build it."""
    fields.setdefault("api_key", "sk-test-secret-key-123456")
    fields.update(CLOUD_FIELDS.get(adapter, {}))
    return ProviderConfig(
        id=fields.pop("id", adapter), adapter=adapter, base_url=base_url, models=[ModelConfig(name="m")], **fields
    )
