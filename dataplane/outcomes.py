"""What every upstream call and every client request leaves behind, the same for plain and panel calls: a live
observation into the health pipe, the attempt, failover, request, token and spend metrics, and the tokens read
from a usage object. Handlers decide *what* happened; this module is the one place that says how it is counted.
"""

from __future__ import annotations

from typing import Any

from controlplane.domain import Classification, ErrorClass, Observation, Source
from controlplane.seams import DataPlaneDeps
from dataplane.selection import Candidate

__all__ = ["Accounting", "tokens"]


def tokens(usage: Any) -> tuple[int, int]:
    """(input, output) tokens from an OpenAI- or Anthropic-shaped usage object; (0, 0) when absent."""
    if not usage or not isinstance(usage, dict):
        return 0, 0
    tin = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    tout = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return (tin if isinstance(tin, int) else 0), (tout if isinstance(tout, int) else 0)


class Accounting:
    """Observations and metrics for the data plane. Reads the sink, metrics and clock from `rt` at each call (a
    control replica may replace the sink while it runs); metric children are resolved once per label set."""

    def __init__(self, rt: DataPlaneDeps) -> None:
        self._rt = rt
        self._bundles: dict[tuple[Any, ...], Any] = {}  # metric children resolved together per request kind

    def observe(
        self,
        cand: Candidate,
        c: Classification,
        *,
        latency: float | None,
        ttft: float | None,
        headroom: float | None,
        duration: float | None = None,
    ) -> None:
        """One upstream call as a live observation (a stream: latency to its first chunk, `duration` to its end)."""
        rt = self._rt
        rt.sink.submit(
            Observation(
                target=cand.target,
                at=rt.clock.wall(),
                source=Source.LIVE,
                kind="live",
                error_class=c.error_class,
                latency_s=latency,
                ttft_s=ttft,
                status=c.status,
                headroom=headroom,
                retry_after_s=c.retry_after_s,
                scope=c.scope,
                code=c.code,
                detail=c.detail,
                extra={"stream_duration_s": duration} if duration is not None else {},
            )
        )

    def attempt(self, route: str, cand: Candidate, error_class: ErrorClass) -> None:
        m = self._rt.metrics
        m.child(m.dataplane_attempts_total, route, cand.provider.id, cand.model, str(error_class)).inc()

    def failover(self, route: str, error_class: ErrorClass) -> None:
        m = self._rt.metrics
        m.child(m.dataplane_failovers_total, route, str(error_class)).inc()

    def request(self, route: str, stream: bool, outcome: str, latency: float) -> None:
        """Metrics for one finished client request."""
        key = ("request", route, stream, outcome)
        pair = self._bundles.get(key)
        if pair is None:
            m = self._rt.metrics
            pair = self._bundles[key] = (
                m.dataplane_requests_total.labels(route, outcome),
                m.dataplane_request_duration_seconds.labels(route, "true" if stream else "false"),
            )
        pair[0].inc()
        pair[1].observe(latency)

    def usage(self, route: str, target: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        """Tokens and estimated spend through one target (children for the three series cached together)."""
        key = ("usage", route, target)
        trio = self._bundles.get(key)
        if trio is None:
            m = self._rt.metrics
            provider, _, model = target.partition("/")
            trio = self._bundles[key] = (
                m.dataplane_tokens_total.labels(route, provider, model, "in"),
                m.dataplane_tokens_total.labels(route, provider, model, "out"),
                m.dataplane_cost_usd_total.labels(route, provider, model),
            )
        trio[0].inc(tokens_in)
        trio[1].inc(tokens_out)
        if cost:
            trio[2].inc(cost)
