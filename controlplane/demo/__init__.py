"""`turnout demo`: the whole product in one process, on a scripted outage story (see runner.py)."""

from __future__ import annotations

from controlplane.demo.runner import REQUIRED_EVENTS, DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo", "REQUIRED_EVENTS"]
