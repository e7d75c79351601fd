from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["controlplane.api", "controlplane.webhooks", "controlplane.keys"])
def test_all_lists_only_existing_public_names(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ lists missing {name}"
        assert not name.startswith("_")
