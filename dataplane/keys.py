"""Client keys on the hot path: who is calling, may they use this route, and are they within their limits.

The gate holds the key ring (controlplane/keys: usable keys' hashes, limits and spend this period) in a dict by
public id, re-read every `auth.data.refresh_interval` from the store (all-in-one) or a control replica (data
replicas). A request costs a dict lookup, one SHA-256 of the presented key compared in constant time, and a few
counters in memory:

- requests per minute and tokens per minute are token buckets per key (capacity = the limit, refilled evenly):
  a request takes one request; its tokens (in + out, known when it finishes) are taken afterwards, so a key in
  token debt is refused until the bucket is back above zero;
- the budget is the store's spend this period (as of the last ring read) plus what this process spent since.

Keys are required once any key exists or `auth.data.require_key` is true; before the first ring read succeeds
a gate with a source refuses every request (fail closed). Refusals (401/403/429) happen before any upstream
attempt: they never reach the breakers (a key's own limits are not a provider's health).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import orjson

from controlplane.clock import Clock
from controlplane.config import DataAuthConfig
from controlplane.keys.model import KeyChange, Ring, RingKey
from controlplane.keys.tokens import key_id_of, matches
from dataplane.http.messages import Response, error_response

__all__ = [
    "KeyGate",
    "KeySource",
    "Caller",
    "Admission",
    "Refusal",
    "Bucket",
    "presented_key",
    "reset_text",
    "openai_refusal",
    "anthropic_refusal",
]

log = logging.getLogger("turnout.keys")

KeySource = Callable[[], Awaitable[Ring]]
ChangeCallback = Callable[[str, KeyChange], None]
Subscribe = Callable[[ChangeCallback], Callable[[], None]]  # controlplane.keys.store.ring_source gives one
RefusalKind = Literal["missing", "invalid", "route", "requests", "tokens", "quota"]
_MISS_REFRESH_SPACING_S = 0.25  # an unknown key id re-reads the ring at most this often (a flood of guesses
# must not become a flood of store reads; a key made a moment ago is found at once)


class Bucket:
    """A token bucket: `capacity` per minute, refilled evenly; the level may go below zero (token debt)."""

    __slots__ = ("capacity", "rate", "level", "at")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.at = now

    def refill(self, now: float) -> float:
        if now > self.at:
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
            self.at = now
        return self.level

    def wait_s(self, need: float) -> float:
        """Seconds until the level reaches `need` (after a refill)."""
        return max(0.0, (need - self.level) / self.rate)

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.level) / self.rate)


def reset_text(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* form: '20ms', '1.5s', '6m0s'."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000) if seconds > 0 else 0}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


@dataclass(slots=True)
class Caller:
    """One key as the gate holds it: its ring entry and this process's counters (kept across ring reads)."""

    key: RingKey
    requests: Bucket | None = None
    tokens: Bucket | None = None
    spent_here: float = 0.0  # spend this process settled since the ring was read
    limit_texts: tuple[str, str] = ("", "")  # str(rpm), str(tpm): the limit headers, made once per ring read
    # Expiry and the budget period's end on the monotonic clock, converted once per ring read: a request then reads
    # one float clock instead of building a wall-clock datetime.
    expires_mono: float = math.inf
    period_end_mono: float = math.inf

    @property
    def id(self) -> str:
        return self.key.id


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is turned away, in terms both client API shapes can render."""

    status: int
    kind: RefusalKind
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Admission:
    """A request let through: who it is (for attribution) and the rate-limit headers to send back."""

    caller: Caller
    headers: dict[str, str]


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `Authorization: Bearer …` (OpenAI SDKs) or `x-api-key` (Anthropic SDKs)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class KeyGate:
    """The data plane's key check (see the module docstring). `source` None: no key store (keys are never
    required unless `auth.data.require_key`, which then refuses everyone)."""

    def __init__(
        self,
        source: KeySource | None,
        clock: Clock,
        settings: Callable[[], DataAuthConfig],
        *,
        subscribe: Subscribe | None = None,
    ) -> None:
        self.source, self.clock, self.settings = source, clock, settings
        self._subscribe = subscribe
        self._unsubscribe: Callable[[], None] | None = None
        self.loaded = source is None
        self.any_keys = False
        self._keys: dict[str, Caller] = {}
        self._task: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Future[bool] | None = None
        self._last_miss_refresh = -math.inf
        self._failing = False
        self._pending_refresh: asyncio.Future[bool] | None = None
        self.refreshes = 0

    # -- the ring ---------------------------------------------------------------------------------
    @property
    def enforcing(self) -> bool:
        """Keys are required: one exists, the config says so, or the ring could not be read yet."""
        return self.any_keys or not self.loaded or self.settings().require_key

    def load(self, ring: Ring) -> None:
        """Adopt a ring: keys gone from it are dropped; a key still in it keeps its counters."""
        now = self.clock.monotonic()
        wall_minus_mono = self.clock.wall().timestamp() - now
        old, fresh = self._keys, {}
        for rk in ring.keys:
            c = old.get(rk.id)
            if c is None:
                c = Caller(rk)
            elif c.key.rpm != rk.rpm or c.key.tpm != rk.tpm:
                c.requests = c.tokens = None  # new limits: fresh buckets
            c.key = rk
            if rk.rpm is not None and c.requests is None:
                c.requests = Bucket(rk.rpm, now)
            if rk.tpm is not None and c.tokens is None:
                c.tokens = Bucket(rk.tpm, now)
            c.limit_texts = (str(rk.rpm), str(rk.tpm))
            c.expires_mono = rk.expires_at - wall_minus_mono if rk.expires_at is not None else math.inf
            c.period_end_mono = rk.period_end - wall_minus_mono
            fresh[rk.id] = c
        self._keys = fresh
        self.any_keys = ring.any_keys
        self.loaded = True

    async def refresh(self) -> bool:
        """Read the ring once (single flight). False when the source failed: the last ring stays in use."""
        if self.source is None:
            return True
        task = self._refreshing
        if task is None:
            task = self._refreshing = asyncio.ensure_future(self._refresh())
            task.add_done_callback(self._refreshed)
        return await asyncio.shield(task)  # a caller that gives up (client gone) leaves the read to finish

    def _refreshed(self, task: asyncio.Future[bool]) -> None:
        if self._refreshing is task:
            self._refreshing = None

    async def _refresh(self) -> bool:
        assert self.source is not None
        marks = {k: c.spent_here for k, c in self._keys.items()}
        try:
            ring = await self.source()
        except Exception as exc:  # a store or control replica being away must not stop the data plane
            if not self._failing:
                self._failing = True
                log.warning("key ring not read (%s: %s); using the last one", type(exc).__name__, str(exc)[:200])
            return False
        if self._failing:
            self._failing = False
            log.warning("key ring read again")
        # The ring's spend includes what was written before it was read; what was settled here meanwhile stays.
        for key_id, mark in marks.items():
            c = self._keys.get(key_id)
            if c is not None:
                c.spent_here = max(0.0, c.spent_here - mark)
        self.load(ring)
        self.refreshes += 1
        return True

    def forget(self, key_id: str) -> None:
        """Drop a key at once (revoked or rotated in this process); the next ring read brings its successor."""
        self._keys.pop(key_id, None)

    def _changed(self, key_id: str, change: KeyChange) -> None:
        self.any_keys = True  # keys are required from the first one on, not from the next ring read
        if change != "created":
            self.forget(key_id)  # before the API answers: the old key is refused from now on
        self._pending_refresh = asyncio.ensure_future(self.refresh())

    async def start(self) -> None:
        """Read the ring, then keep it fresh in the background."""
        if self.source is None:
            return
        if self._subscribe is not None and self._unsubscribe is None:
            loop = asyncio.get_running_loop()

            # The key store announces from the API's worker thread: hop onto the loop (in order, before the
            # API handler itself resumes).
            def announced(key_id: str, change: KeyChange) -> None:
                loop.call_soon_threadsafe(self._changed, key_id, change)

            self._unsubscribe = self._subscribe(announced)
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="turnout-key-ring")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings().refresh_interval)
            await self.refresh()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- per request ------------------------------------------------------------------------------
    async def identify(self, headers: Mapping[str, str]) -> Caller | Refusal | None:
        """The caller behind the request's key; None when keys are not required (anonymous); a 401 Refusal for a
        missing, malformed, unknown, revoked or expired key."""
        if not self.enforcing:
            return None
        key = presented_key(headers)
        if key is None:
            return Refusal(
                401, "missing", "this data plane needs a client key: Authorization: Bearer tk_… (or x-api-key)"
            )
        key_id = key_id_of(key)
        if key_id is None:
            return Refusal(401, "invalid", "the client key is not valid")
        c = self._keys.get(key_id)
        if (c is None or not matches(key, c.key.key_hash)) and self.source is not None:
            now = self.clock.monotonic()
            if now - self._last_miss_refresh >= _MISS_REFRESH_SPACING_S:  # made or rotated a moment ago?
                self._last_miss_refresh = now
                await self.refresh()
                c = self._keys.get(key_id)
        if c is None or not matches(key, c.key.key_hash):
            return Refusal(401, "invalid", "the client key is not valid (unknown, revoked or rotated)")
        if self.clock.monotonic() >= c.expires_mono:
            return Refusal(401, "invalid", f"client key {c.id} has expired")
        return c

    def admit(self, caller: Caller, model: str) -> Admission | Refusal:
        """May `caller` send this request to `model` now? 403 for a route it may not use, 429 over a limit."""
        k = caller.key
        if k.routes is not None and model not in k.routes:
            allowed = ", ".join(sorted(k.routes))
            return Refusal(403, "route", f"client key {k.id} may not use {model[:80]!r}; it may use: {allowed}")
        now = self.clock.monotonic()
        if k.budget_usd is not None:
            spent = caller.spent_here + (k.spent_usd if now < caller.period_end_mono else 0.0)
            if spent >= k.budget_usd:
                return Refusal(
                    429,
                    "quota",
                    f"client key {k.id} has spent its budget of ${k.budget_usd:g} this {k.budget_period} "
                    f"(${spent:.4f} estimated)",
                )
        req, tok = caller.requests, caller.tokens
        if req is not None:
            req.refill(now)
        if tok is not None:
            tok.refill(now)
        if req is not None and req.level < 1:
            return self._limited(caller, "requests", req.wait_s(1))
        if tok is not None and tok.level <= 0:
            return self._limited(caller, "tokens", tok.wait_s(1))
        if req is not None:
            req.level -= 1
        return Admission(caller, self.limit_headers(caller) if req is not None or tok is not None else {})

    def _limited(self, caller: Caller, what: Literal["requests", "tokens"], wait: float) -> Refusal:
        k = caller.key
        headers = self.limit_headers(caller)
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        limit = k.rpm if what == "requests" else k.tpm
        per = "requests" if what == "requests" else "tokens"
        return Refusal(
            429,
            what,
            f"client key {k.id} is over its limit of {limit} {per} per minute; retry in {reset_text(wait)}",
            headers,
        )

    def limit_headers(self, caller: Caller) -> dict[str, str]:
        """The x-ratelimit-* headers as the buckets stand now (refusals carry them too)."""
        out: dict[str, str] = {}
        req, tok = caller.requests, caller.tokens
        if req is not None:
            out["x-ratelimit-limit-requests"] = caller.limit_texts[0]
            out["x-ratelimit-remaining-requests"] = str(int(req.level)) if req.level > 0 else "0"
            out["x-ratelimit-reset-requests"] = reset_text(req.reset_s())
        if tok is not None:
            out["x-ratelimit-limit-tokens"] = caller.limit_texts[1]
            out["x-ratelimit-remaining-tokens"] = str(int(tok.level)) if tok.level > 0 else "0"
            out["x-ratelimit-reset-tokens"] = reset_text(tok.reset_s())
        return out

    def settle(self, admission: Admission | None, tokens: int, cost_usd: float) -> None:
        """A finished request's tokens and estimated spend, against its key's buckets and budget."""
        if admission is None:
            return
        c = admission.caller
        if tokens and c.tokens is not None:
            c.tokens.refill(self.clock.monotonic())
            c.tokens.level -= tokens
        if cost_usd:
            c.spent_here += cost_usd

    def allowed(self, caller: Caller | None, names: list[str]) -> list[str]:
        """The names of `names` the caller may use (for GET /v1/models)."""
        if caller is None or caller.key.routes is None:
            return names
        return [n for n in names if n in caller.key.routes]


# How each refusal reads in OpenAI's error shape (type, code) and in Anthropic's (error.type); the SDKs pick their
# exception class from the status (401 AuthenticationError, 403 PermissionDeniedError, 429 RateLimitError).
_OPENAI: dict[RefusalKind, tuple[str, str]] = {
    "missing": ("invalid_request_error", "missing_api_key"),
    "invalid": ("invalid_request_error", "invalid_api_key"),
    "route": ("invalid_request_error", "model_not_allowed"),
    "requests": ("requests", "rate_limit_exceeded"),
    "tokens": ("tokens", "rate_limit_exceeded"),
    "quota": ("insufficient_quota", "insufficient_quota"),
}
_ANTHROPIC: dict[RefusalKind, str] = {
    "missing": "authentication_error",
    "invalid": "authentication_error",
    "route": "permission_error",
    "requests": "rate_limit_error",
    "tokens": "rate_limit_error",
    "quota": "billing_error",
}


def openai_refusal(r: Refusal) -> Response:
    """A refusal as OpenAI answers it (chat completions, Responses, embeddings, models)."""
    type_, code = _OPENAI[r.kind]
    headers = {**r.headers, "www-authenticate": "Bearer"} if r.status == 401 else r.headers
    return error_response(
        r.status, r.message, type_, code, param="model" if r.kind == "route" else None, headers=headers
    )


def anthropic_refusal(r: Refusal) -> Response:
    """A refusal as Anthropic's Messages API answers it."""
    body = {"type": "error", "error": {"type": _ANTHROPIC[r.kind], "message": r.message}}
    return Response(orjson.dumps(body), status=r.status, headers=r.headers)
