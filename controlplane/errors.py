"""Turnout's exceptions. Errors carry fields; `__str__` is for people, `__repr__` shows the fields.

TurnoutError
 ├── ConfigError(file, field, problem, fix)
 │    └── ConfigProblems(problems): every mistake of one file, in file order
 ├── ProviderError(provider, target, classification)
 ├── IllegalTransition(old, new)
 └── StoreError(operation, cause)

One more subclass lives beside the code that raises it: `NotLeader` (controlplane/scaleout/control_replica.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controlplane.domain import Classification, ErrorClass, State

__all__ = [
    "TurnoutError",
    "ConfigError",
    "ConfigProblems",
    "config_problems",
    "ProviderError",
    "IllegalTransition",
    "StoreError",
]


class TurnoutError(Exception):
    """Base of every error Turnout raises on purpose."""


class ConfigError(TurnoutError):
    """A config mistake: names the file, the dotted field path, what is wrong and how to fix it."""

    def __init__(self, file: str, field: str, problem: str, fix: str = "") -> None:
        self.file, self.field, self.problem, self.fix = file, field, problem, fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}: " if self.field else f"{self.file}: "
        return where + self.problem + (f" ({self.fix})" if self.fix else "")

    def __repr__(self) -> str:
        return f"ConfigError(file={self.file!r}, field={self.field!r}, problem={self.problem!r}, fix={self.fix!r})"


class ConfigProblems(ConfigError):
    """Several mistakes in one file, reported together so a fix-and-retry loop is one round, not one per mistake.

    The ConfigError fields are the first problem's (callers that show one field keep working); `problems` holds
    them all."""

    def __init__(self, problems: Sequence[ConfigError]) -> None:
        if not problems:
            raise ValueError("ConfigProblems needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.file, first.field, first.problem, first.fix)

    def __str__(self) -> str:
        lines = [f"{self.problems[0].file}: {len(self.problems)} problems:"]
        for p in self.problems:
            where = f"{p.field}: " if p.field else ""
            lines.append(f"  {where}{p.problem}" + (f" ({p.fix})" if p.fix else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ConfigProblems(problems={self.problems!r})"


def config_problems(problems: Sequence[ConfigError]) -> ConfigError:
    """One problem as itself, several as a ConfigProblems."""
    return problems[0] if len(problems) == 1 else ConfigProblems(problems)


class ProviderError(TurnoutError):
    """An upstream answered badly (or not at all); `classification` says how."""

    def __init__(self, provider: str, target: str | None, classification: Classification) -> None:
        self.provider, self.target, self.classification = provider, target, classification
        super().__init__(str(self))

    @property
    def error_class(self) -> ErrorClass:
        return self.classification.error_class

    @property
    def status(self) -> int | None:
        return self.classification.status

    def __str__(self) -> str:
        c = self.classification
        who = self.target or self.provider
        status = f" ({c.status})" if c.status is not None else ""
        detail = f": {c.detail}" if c.detail else ""
        return f"{who}: {c.error_class}{status}{detail}"

    def __repr__(self) -> str:
        return (
            f"ProviderError(provider={self.provider!r}, target={self.target!r}, classification={self.classification!r})"
        )


class IllegalTransition(TurnoutError):
    def __init__(self, old: State, new: State) -> None:
        self.old, self.new = old, new
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"illegal breaker transition {self.old} -> {self.new}"

    def __repr__(self) -> str:
        return f"IllegalTransition(old={self.old!r}, new={self.new!r})"


class StoreError(TurnoutError):
    """The store could not do what was asked (disk full, read-only, unreachable)."""

    def __init__(self, operation: str, cause: str) -> None:
        self.operation, self.cause = operation, cause
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"store {self.operation} failed: {self.cause}"

    def __repr__(self) -> str:
        return f"StoreError(operation={self.operation!r}, cause={self.cause!r})"
