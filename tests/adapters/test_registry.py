from __future__ import annotations

import pytest

from adapters.registry import ADAPTERS, get_adapter
from controlplane.config import ADAPTERS as CONFIG_ADAPTERS


def test_registry_serves_every_adapter_the_config_accepts() -> None:
    assert set(ADAPTERS) == set(CONFIG_ADAPTERS)
    for name in CONFIG_ADAPTERS:
        assert get_adapter(name).name == name


def test_unknown_adapter_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: openai, anthropic, gemini, bedrock, vertex, azure"):
        get_adapter("watsonx")
