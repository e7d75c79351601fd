"""Helpers shared by tests: free ports, and skipping (or failing, in CI) when an outside server is missing."""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["free_port", "require_integration", "REQUIRE_INTEGRATION"]

REQUIRE_INTEGRATION = os.environ.get("TURNOUT_REQUIRE_INTEGRATION") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_integration(available: bool, reason: str) -> None:
    """Skip with a clear reason on a machine without the server; under TURNOUT_REQUIRE_INTEGRATION=1, fail."""
    if available:
        return
    if REQUIRE_INTEGRATION:
        pytest.fail(f"integration prerequisite missing (TURNOUT_REQUIRE_INTEGRATION=1): {reason}")
    pytest.skip(reason)
