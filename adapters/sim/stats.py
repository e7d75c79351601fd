"""Request accounting for the simulator: requests per provider/model/endpoint, faults fired, statuses sent.
Data-plane tests read it to count attempts per target."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["Stats"]


class Stats:
    """Counters since start (or the last reset)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()  # (provider, model or "", endpoint)
        self.faults: Counter[tuple[str, str]] = Counter()  # (provider, fault id)
        self.statuses: Counter[tuple[str, int | str]] = Counter()  # (provider, HTTP status or "reset")

    def count(self, provider: str, model: str | None, endpoint: str) -> None:
        self.requests[(provider, model or "", endpoint)] += 1

    def fault(self, provider: str, fault_id: str) -> None:
        self.faults[(provider, fault_id)] += 1

    def status(self, provider: str, status: int | str) -> None:
        self.statuses[(provider, status)] += 1

    def requests_for(self, provider: str | None = None, model: str | None = None, endpoint: str | None = None) -> int:
        """Requests matching every given filter (None = any)."""
        return sum(
            n
            for (p, m, e), n in self.requests.items()
            if (provider is None or p == provider)
            and (model is None or m == model)
            and (endpoint is None or e == endpoint)
        )

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.statuses.clear()

    def to_json(self, providers: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"total": sum(self.requests.values()), "providers": {}}
        for pid in providers:
            mine = {k: n for k, n in self.requests.items() if k[0] == pid}
            models: Counter[str] = Counter()
            endpoints: Counter[str] = Counter()
            targets: dict[str, dict[str, int]] = {}
            for (_, model, endpoint), n in mine.items():
                endpoints[endpoint] += n
                if model:
                    models[model] += n
                    targets.setdefault(model, {})[endpoint] = targets.get(model, {}).get(endpoint, 0) + n
            out["providers"][pid] = {
                "requests": sum(mine.values()),
                "models": dict(models),
                "endpoints": dict(endpoints),
                "targets": targets,
                "faults": {f: n for (p, f), n in self.faults.items() if p == pid},
                "statuses": {str(s): n for (p, s), n in self.statuses.items() if p == pid},
            }
        totals: Counter[str] = Counter()
        for (_, fault_id), n in self.faults.items():
            totals[fault_id] += n
        out["faults"] = dict(totals)
        return out
