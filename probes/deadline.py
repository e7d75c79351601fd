"""A probe's deadline learned from its own recent answers, so a hung probe is cut by what is normal for that
job, not held for the whole `probes.timeout` (which stays the upper bound).

Why: a probe job runs at most `MAX_IN_FLIGHT` at a time; a probe held for 10 s on a 1 s interval would keep the
next ones from starting, so a recovered target would wait for the hung probe's timeout to be seen. The rule
mirrors the data plane's learned first-byte deadline (dataplane/deadlines.py): `factor` × the slowest recent
successful run, never below `floor`, never above the configured timeout; with fewer than `min_samples` successes
in the last `window_intervals` intervals the configured timeout applies, so a target that became slower for good
is relearned instead of being cut forever.
"""

from __future__ import annotations

from collections import deque

from controlplane.clock import Clock

__all__ = ["MAX_IN_FLIGHT", "ProbeDeadlines"]

# Probes of one job (one kind, one target or provider) in flight at once: one may hang while the next starts when
# due; a third due while two still run is skipped (reason `in_flight`), so a hung target costs at most two.
MAX_IN_FLIGHT = 2


class ProbeDeadlines:
    def __init__(
        self,
        clock: Clock,
        *,
        factor: float = 3.0,
        floor: float = 1.0,
        min_samples: int = 3,
        window_intervals: float = 10.0,
        max_samples: int = 20,
    ) -> None:
        self._clock = clock
        self.factor, self.floor, self.min_samples = factor, floor, min_samples
        self.window_intervals, self._max_samples = window_intervals, max_samples
        self._runs: dict[str, deque[tuple[float, float]]] = {}  # job key → (monotonic at, seconds)

    def succeeded(self, key: str, seconds: float) -> None:
        """A run of job `key` answered successfully in `seconds`."""
        runs = self._runs.setdefault(key, deque(maxlen=self._max_samples))
        runs.append((self._clock.monotonic(), seconds))

    def deadline(self, key: str, interval: float, timeout: float) -> float:
        """The deadline of the next run of job `key`."""
        runs = self._runs.get(key)
        if not runs:
            return timeout
        oldest = self._clock.monotonic() - self.window_intervals * interval
        while runs and runs[0][0] < oldest:
            runs.popleft()
        if len(runs) < self.min_samples:
            return timeout
        return min(timeout, max(self.floor, self.factor * max(s for _, s in runs)))
