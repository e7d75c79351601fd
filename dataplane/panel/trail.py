"""The panel's trail: one entry per upstream call a panel request made (member, judge or synthesizer), and the
usage summed over them, for the decision trail, the decision log and the reply's usage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Call", "sum_usage"]


@dataclass(slots=True)
class Call:
    """One upstream call made for a panel request (member, judge or synthesizer), for the trail and the log."""

    stage: str  # member | judge | synthesizer
    target: str
    outcome: str  # ok, an error class, "deadline" (cut by the member deadline) or "empty" (no answer text)
    status: int | None = None
    latency_s: float | None = None
    detail: str = ""
    slot: int | None = None  # member slot (a replacement keeps its slot)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0

    def brief(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": None if self.latency_s is None else round(self.latency_s * 1000, 1),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, 8),
        }
        if self.slot is not None:
            out["slot"] = self.slot
        if self.detail:
            out["detail"] = self.detail
        return out


def sum_usage(calls: Sequence[Call]) -> dict[str, int]:
    """OpenAI-shaped usage summed over every call of a panel request."""
    tin = sum(c.tokens_in for c in calls)
    tout = sum(c.tokens_out for c in calls)
    return {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
