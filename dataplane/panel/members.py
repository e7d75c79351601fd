"""Who sits on a panel: the first admissible targets in table order (one per provider when asked), the rest kept
in order as replacements; and what a member that answered brings back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dataplane.selection import Candidate, Plan

__all__ = ["MemberAnswer", "answer_text", "choose_members"]


@dataclass(slots=True)
class MemberAnswer:
    """A member that answered: its slot, its target and its text (the OpenAI-shaped response kept for degrading)."""

    slot: int
    cand: Candidate
    text: str
    response: dict[str, Any]


def choose_members(
    plans: Sequence[Plan], size: int, distinct_providers: bool
) -> tuple[list[Candidate], list[Candidate]]:
    """The first `size` members in table order (one per provider when `distinct_providers`), and the rest in
    order as replacements. `plans` hold admissible candidates only, one plan per `panel.from` entry."""
    chosen: list[Candidate] = []
    pool: list[Candidate] = []
    seen: set[str] = set()
    for plan in plans:
        for c in plan.candidates:
            if c.target in seen:
                continue
            seen.add(c.target)
            taken = distinct_providers and any(m.provider.id == c.provider.id for m in chosen)
            (chosen if len(chosen) < size and not taken else pool).append(c)
    return chosen, pool


def answer_text(response: dict[str, Any] | None) -> str:
    choices = response.get("choices") if response else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    msg = choices[0].get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    return content if isinstance(content, str) else ""
