"""First-byte deadlines learned per target: a hang is cut by what is normal for that target, not by the
configured worst case.

Each successful attempt leaves its time to the first committable byte (the first content chunk of a stream, the
whole body of a non-streamed answer) in its target's series, streamed and non-streamed kept apart. An attempt's
first-byte deadline is then `percentile` of the recent series (the last `window` seconds) times `factor`, never
below `floor` and never above `dataplane.first_byte_timeout`; with fewer than `min_samples` recent answers the
configured timeout applies unchanged. A non-streamed request's deadline grows with its requested output size
(`max_tokens` and its aliases) when that is larger than what the series' answers typically asked for.

The hot path reads one cached float per (target, stream); once learned, the percentile is recomputed at most once
a second per series (forgetting old answers then), before that whenever a new answer came (clock injected).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from controlplane.clock import Clock
from controlplane.config import DataPlaneConfig

__all__ = ["OUTPUT_SIZE_KEYS", "FirstByteDeadlines", "requested_size"]

_MAX_SAMPLES = 256  # per series: a p99 of the last 256 answers is what "recent" means on a busy target
_RECOMPUTE_EVERY_S = 1.0
OUTPUT_SIZE_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")  # chat, Messages, Responses


def requested_size(body: dict[str, Any]) -> int | None:
    """The requested output size of an OpenAI-shaped body, when it says one."""
    for k in OUTPUT_SIZE_KEYS:
        v = body.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


class _Series:
    __slots__ = ("samples", "learned", "typical_size", "computed_at", "dirty")

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float, int | None]] = deque(maxlen=_MAX_SAMPLES)  # (at, seconds, size)
        self.learned: float | None = None  # percentile × factor, unbounded; None: too little history
        self.typical_size: int | None = None
        self.computed_at = -math.inf
        self.dirty = False


class FirstByteDeadlines:
    """The learned first-byte deadline of each target (see the module docstring)."""

    def __init__(self, config: DataPlaneConfig, clock: Clock) -> None:
        self._clock = clock
        self._series: dict[bool, dict[str, _Series]] = {True: {}, False: {}}  # stream? → target → its series
        self.configure(config)

    def configure(self, config: DataPlaneConfig) -> None:
        c = config.learned_first_byte
        self.configured = config.first_byte_timeout
        self.enabled, self.percentile, self.factor = c.enabled, c.percentile, c.factor
        self.floor, self.min_samples, self.window = c.floor, c.min_samples, c.window
        for per_target in self._series.values():
            if not self.enabled:
                per_target.clear()  # learning switched off: the configured timeout from now on
            for s in per_target.values():
                s.computed_at, s.dirty = -math.inf, True  # the knobs changed: recompute on next use

    def record(self, target: str, stream: bool, seconds: float, size: int | None = None) -> None:
        """One successful attempt's time to its first committable byte."""
        if not self.enabled:
            return
        per_target = self._series[stream]
        s = per_target.get(target)
        if s is None:
            s = per_target[target] = _Series()
        s.samples.append((self._clock.monotonic(), seconds, size))
        s.dirty = True

    def first_byte(self, target: str, stream: bool, size: int | None = None) -> tuple[float, bool]:
        """(deadline in seconds, whether it was learned) for one attempt to `target`."""
        s = self._series[stream].get(target)
        if s is None:
            return self.configured, False
        if s.learned is None:
            if s.dirty:  # still learning: look again as soon as there is a new answer (a short sort)
                self._recompute(s, self._clock.monotonic())
        else:
            now = self._clock.monotonic()
            if now - s.computed_at >= _RECOMPUTE_EVERY_S:  # learned: refresh (forget old answers) once a second
                self._recompute(s, now)
        learned = s.learned
        if learned is None:
            return self.configured, False
        if not stream and size is not None and s.typical_size is not None and size > s.typical_size:
            learned *= size / s.typical_size  # a longer answer takes longer before its first (only) byte
        if learned >= self.configured:
            return self.configured, False
        return max(self.floor, learned), True

    def _recompute(self, s: _Series, now: float) -> None:
        horizon = now - self.window
        while s.samples and s.samples[0][0] < horizon:
            s.samples.popleft()
        s.computed_at, s.dirty = now, False
        if len(s.samples) < self.min_samples:
            s.learned = s.typical_size = None
            return
        values = sorted(v for _, v, _ in s.samples)
        s.learned = values[min(len(values) - 1, math.ceil(self.percentile * len(values)) - 1)] * self.factor
        sizes = sorted(n for _, _, n in s.samples if n is not None)
        s.typical_size = sizes[len(sizes) // 2] if sizes else None
