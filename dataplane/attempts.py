"""One upstream attempt: send, honour the connect / first-byte / stall timeouts, classify, pump the stream.

An attempt has two phases. `open()` runs until the answer can be committed to the client: the whole body
for a JSON request, the first chunk for a stream. Anything that goes wrong in that phase is a classified
outcome the proxy may fail over on, because nothing has reached the client yet. `pump()` then forwards the
rest of a stream; a failure there can only end the client's stream with an error event. Provider faults
never raise out of this module; they come back as a `Classification`.

Longer than most modules (~430 lines): one concept, one attempt, whose two phases share their state
(the response, the stream judge, the span, the timers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from adapters.base import Adapter, StreamItem, UpstreamRequest, prepare_credentials
from adapters.calls import MAX_BODY_BYTES
from adapters.embeddings import EmbeddingsAdapter
from adapters.stream_judge import StreamJudge
from adapters.transport_faults import TRANSPORT_FAULTS, transport_fault
from controlplane import tracing
from controlplane.clock import Clock
from controlplane.domain import Classification, ErrorClass, Headroom
from controlplane.errors import ProviderError
from dataplane.deadlines import FirstByteDeadlines, requested_size
from dataplane.http.upstream import UpstreamPool, UpstreamResponse
from dataplane.selection import Candidate

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Timeouts", "Opened", "StreamEnd", "StreamWriter", "UpstreamAttempt", "ClientGone", "sse_error_event"]

_ERROR_BODY_LIMIT = 1 << 20  # an error body larger than this is garbage anyway; never buffer a 10 MB page
_DONE = b"data: [DONE]\n\n"


class ClientGone(Exception):
    """The client went away (disconnect or its own timeout). Never counts against the provider."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-attempt limits (seconds). The request's total deadline (loop time) bounds each wait further."""

    connect: float
    first_byte: float
    stall: float


@dataclass(slots=True)
class Opened:
    """What `open()` found: a committable answer (classification ok) or a classified failure."""

    classification: Classification
    latency_s: float | None = None  # send → full body (JSON) or → first chunk (stream)
    ttft_s: float | None = None
    headroom: Headroom | None = None
    body: bytes | None = None  # upstream body bytes (JSON success, or an error body for pass-through)
    response: dict[str, Any] | None = None  # the OpenAI-shaped completion (JSON success)
    buffered: list[StreamItem] = field(default_factory=list)  # stream items read before commit
    deadline_cut: bool = False  # timed out on a learned first-byte deadline shorter than first_byte_timeout

    @property
    def ok(self) -> bool:
        return self.classification.error_class is ErrorClass.OK


@dataclass(slots=True)
class StreamEnd:
    """How a committed stream ended."""

    classification: Classification
    usage: dict[str, int] | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    client_gone: bool = False


def _fail(error_class: ErrorClass, detail: str, status: int | None = None, code: str | None = None) -> Classification:
    return Classification(error_class, status=status, code=code, detail=detail)


def _fault(exc: Exception, *, started: bool, timeout: str, status: int | None = None) -> Classification:
    """A transport exception classified by the shared table (adapters/transport_faults.py); `timeout` names
    which of our limits ran out. A non-transport exception is a bug and raises."""
    return transport_fault(
        exc, answer_started=started, detail=timeout if isinstance(exc, TimeoutError) else None, status=status
    )


class StreamWriter(Protocol):
    """A client API's stream shape: the bytes for translated items, and the error event that ends a cut stream."""

    def encode(self, items: Sequence[StreamItem]) -> bytes: ...

    def error(self, c: Classification) -> bytes: ...


def sse_error_event(c: Classification) -> bytes:
    """The OpenAI-style mid-stream error event that ends a client stream."""
    err = {
        "message": c.detail or f"upstream {c.error_class}",
        "type": "upstream_error",
        "code": str(c.error_class),
        "param": None,
    }
    return b"data: " + orjson.dumps({"error": err}) + b"\n\n"


def _tapped(tap: Callable[[StreamItem], StreamItem | None], items: list[StreamItem]) -> list[StreamItem]:
    return [x for x in map(tap, items) if x is not None]


class UpstreamAttempt:
    """One call to one candidate. Create, `await open()`, then (stream, ok) `await pump(emit)`; always `close()`."""

    def __init__(
        self,
        pool: UpstreamPool,
        adapter: Adapter,
        cand: Candidate,
        body: dict[str, Any],
        *,
        stream: bool,
        timeouts: Timeouts,
        clock: Clock,
        deadline: float,
        include_usage: bool = True,
        trace_parent: Span | None = None,
        attempt: int = 1,
        deadlines: FirstByteDeadlines | None = None,
    ) -> None:
        self.cand, self.adapter, self.stream = cand, adapter, stream
        self._deadlines = deadlines  # learned first-byte deadlines (dataplane/deadlines.py); None: the configured
        self._pool, self._body, self._timeouts = pool, body, timeouts
        self._clock, self._deadline = clock, deadline
        self._include_usage = include_usage  # False: drop the usage-only chunk we asked the upstream for
        self._resp: UpstreamResponse | None = None
        self._judge: StreamJudge | None = None
        self._t0 = 0.0
        self._ttft: float | None = None
        self._trace_parent, self._attempt_no = trace_parent, attempt  # the request's span: this attempt's is a child
        self._span: Span | None = None
        self._model_noted = False
        # The loop's last candidate (nothing to fail over to): a learned deadline would only turn a slow answer
        # into an error, so the configured first_byte_timeout applies (set by dataplane/failover.py).
        self.last_resort = False

    # -- phase 1: until committable ---------------------------------------------------------------
    async def open(self) -> Opened:
        try:  # cloud adapters sign with credentials fetched off the loop (adapters.base.Credentialed)
            await prepare_credentials(self.adapter, self.cand.provider)
        except ProviderError as exc:
            return Opened(exc.classification)
        req = self.adapter.build_request(self.cand.provider, self.cand.model, self._body, stream=self.stream)
        if self._trace_parent is None:
            return await self._open(req)
        operation = "embeddings" if isinstance(self.adapter, EmbeddingsAdapter) else "chat"
        self._span = _attempt_span(self.cand, self._trace_parent, self._attempt_no, req, operation)
        opened = await self._open(req)
        if not opened.ok:
            tracing.failed(self._span, str(opened.classification.error_class), opened.classification.detail)
        elif opened.response is not None:
            _response_attributes(self._span, opened.response.get("model"), opened.response.get("usage"))
        return opened

    async def _open(self, req: UpstreamRequest) -> Opened:
        first_byte, learned, size = self._timeouts.first_byte, False, None
        d = self._deadlines
        if d is not None and not self.last_resort:
            size = None if self.stream else requested_size(self._body)
            first_byte, learned = d.first_byte(self.cand.target, self.stream, size)
        first_byte_at = min(asyncio.get_running_loop().time() + first_byte, self._deadline)
        opened = await self._until_committable(req, first_byte_at)
        c = opened.classification
        if c.error_class is ErrorClass.OK:
            if d is not None and opened.latency_s is not None:
                d.record(self.cand.target, self.stream, opened.latency_s, size)
        elif learned and c.error_class is ErrorClass.TIMEOUT and first_byte_at < self._deadline:
            # Cut by what is normal for this target, not by the configured worst case: say so (decision log).
            detail = f"{c.detail} (learned first-byte deadline {first_byte:.2f}s)"
            opened.classification = replace(c, code=c.code or "timeout", detail=detail)
            opened.deadline_cut = True
        return opened

    async def _until_committable(self, req: UpstreamRequest, first_byte_at: float) -> Opened:
        self._t0 = self._clock.monotonic()
        if not self.stream:
            return await self._json(req, first_byte_at)
        try:
            async with asyncio.timeout_at(first_byte_at):
                self._resp = await self._pool.request(req.method, req.url, req.headers, req.body)
        except Exception as exc:
            return Opened(_fault(exc, started=False, timeout="no response headers within the first-byte timeout"))
        resp = self._resp
        headroom = self._headroom(resp)
        if resp.status >= 300:
            return await self._read_error(resp, headroom, first_byte_at)
        return await self._first_chunk(resp, headroom, first_byte_at)

    async def _json(self, req: UpstreamRequest, first_byte_at: float) -> Opened:
        """A non-streamed answer: one timeout covers headers and body (its first byte comes only once it is all generated)."""
        resp: UpstreamResponse | None = None
        try:
            async with asyncio.timeout_at(first_byte_at):
                resp = self._resp = await self._pool.request(req.method, req.url, req.headers, req.body)
                ok_status = 200 <= resp.status < 300
                body = await resp.read(MAX_BODY_BYTES) if ok_status else await resp.read_prefix(_ERROR_BODY_LIMIT)
        except Exception as exc:
            status = resp.status if resp is not None else None
            timeout = "no complete answer within the first-byte timeout"
            return Opened(_fault(exc, started=resp is not None, timeout=timeout, status=status))
        latency = self._clock.monotonic() - self._t0
        headroom = self._headroom(resp)
        if not ok_status:
            return Opened(self._classify(resp, body), latency_s=latency, headroom=headroom, body=body)
        try:
            parsed = self.adapter.parse_response(body, model=self.cand.model)
        except ProviderError as exc:
            return Opened(exc.classification, latency_s=latency, headroom=headroom)
        except Exception as exc:  # an adapter bug on odd input is still a bad answer, never a crash
            return Opened(
                _fail(ErrorClass.BAD_RESPONSE, f"unreadable response: {type(exc).__name__}", resp.status),
                latency_s=latency,
            )
        return Opened(
            Classification(ErrorClass.OK, status=resp.status),
            latency_s=latency,
            ttft_s=latency,
            headroom=headroom,
            body=body,
            response=parsed,
        )

    def _headroom(self, resp: UpstreamResponse) -> Headroom | None:
        try:
            return self.adapter.headroom(resp.headers, self._clock.wall())
        except Exception:  # a header we cannot read must not fail a request that succeeded
            return None

    async def _read_error(self, resp: UpstreamResponse, headroom: Headroom | None, first_byte_at: float) -> Opened:
        """A stream request answered with an error status: read (a capped amount of) the body and classify it."""
        try:
            async with asyncio.timeout_at(first_byte_at):
                body = await resp.read_prefix(_ERROR_BODY_LIMIT)
        except Exception as exc:
            c = _fault(exc, started=True, timeout="error body not complete in time", status=resp.status)
            return Opened(c, headroom=headroom)
        return Opened(
            self._classify(resp, body), latency_s=self._clock.monotonic() - self._t0, headroom=headroom, body=body
        )

    def _classify(self, resp: UpstreamResponse, body: bytes) -> Classification:
        try:
            return self.adapter.classify(resp.status, resp.headers, body)
        except Exception as exc:
            return _fail(ErrorClass.BAD_RESPONSE, f"unclassifiable error answer: {type(exc).__name__}", resp.status)

    async def _first_chunk(self, resp: UpstreamResponse, headroom: Headroom | None, first_byte_at: float) -> Opened:
        """Read until the stream shows it is an answer (adapters/stream_judge.py: content or a finish reason);
        keep-alives, pings, role-only and usage-only chunks are not progress (TTFT timeout). Until then nothing
        has reached the client, so an empty or failed stream can still fail over."""
        judge = self._judge = StreamJudge(self.adapter.stream_translator(model=self.cand.model), status=resp.status)
        buffered: list[StreamItem] = []
        try:
            async with asyncio.timeout_at(first_byte_at):
                while not judge.answered and judge.verdict is None:
                    try:
                        data = await resp.readany()
                    except TimeoutError:
                        raise  # the first-byte timeout, below
                    except TRANSPORT_FAULTS as exc:
                        items = judge.close(cut=exc)
                    else:
                        items = judge.feed(data) if data else judge.close()
                    for item in items:
                        buffered.append(item)
                        self._note(item)
        except TimeoutError:
            c = _fail(ErrorClass.TIMEOUT, "no chunk within the first-byte timeout", resp.status, "timeout")
            return Opened(c, headroom=headroom)
        v = judge.verdict
        if v is not None and v.error_class is not ErrorClass.OK:
            return Opened(v, headroom=headroom)
        latency = self._clock.monotonic() - self._t0
        return Opened(
            Classification(ErrorClass.OK, status=resp.status),
            latency_s=latency,
            ttft_s=self._ttft,
            headroom=headroom,
            buffered=buffered,
        )

    def _note(self, item: StreamItem) -> None:
        if item.content and self._ttft is None:
            self._ttft = self._clock.monotonic() - self._t0
        if self._span is not None and item.chunk is not None and not self._model_noted:
            model = item.chunk.get("model")
            if isinstance(model, str) and model:  # what answered, which may be a dated snapshot of the model asked
                self._span.set_attribute("gen_ai.response.model", model)
                self._model_noted = True

    # -- phase 2: after commit --------------------------------------------------------------------
    def encode(self, items: list[StreamItem]) -> bytes:
        """Client bytes for items: the upstream's own bytes when passed through, else re-serialised chunks."""
        out: list[bytes] = []
        for item in items:
            if item.kind == "chunk":
                if not self._include_usage and item.usage and item.chunk is not None and not item.chunk.get("choices"):
                    continue  # the usage-only chunk we asked for on the client's behalf
                if item.raw is not None:
                    out.append(item.raw)
                elif item.chunk is not None:
                    out.append(b"data: " + orjson.dumps(item.chunk) + b"\n\n")
            elif item.kind == "done":
                out.append(_DONE)
            elif item.kind == "keepalive":
                # Role-only preambles are forwarded (clients expect them); bare pings carry no bytes to forward.
                if item.raw is not None:
                    out.append(item.raw)
                elif item.chunk is not None:
                    out.append(b"data: " + orjson.dumps(item.chunk) + b"\n\n")
        return b"".join(out)

    async def pump(
        self,
        emit: Callable[[bytes], Awaitable[None]],
        buffered: list[StreamItem],
        writer: StreamWriter | None = None,
        *,
        tap: Callable[[StreamItem], StreamItem | None] | None = None,
        error_event: bool = True,
    ) -> StreamEnd:
        """Forward the buffered items and the rest of the stream; end with [DONE] or an error event. `writer` puts
        them in another client API's shape (its own end and error events); the chat shape without one. `tap` sees
        (and may rewrite or drop) each item before it is encoded (dataplane/resume.py); `error_event=False` leaves
        a failure's error event to the caller, who may continue the answer elsewhere instead."""
        assert self._resp is not None and self._judge is not None
        resp, judge = self._resp, self._judge
        encode = writer.encode if writer is not None else self.encode
        error_of = writer.error if writer is not None else sse_error_event
        loop = asyncio.get_running_loop()
        stall = self._timeouts.stall
        try:
            await emit(encode(_tapped(tap, buffered) if tap is not None else buffered))
            progress_at = loop.time() + stall
            while judge.verdict is None:
                try:
                    async with asyncio.timeout_at(progress_at):
                        data = await resp.readany()
                except TimeoutError:
                    c = _fail(ErrorClass.TIMEOUT, "stream stalled after content was forwarded", resp.status, "timeout")
                    if error_event:
                        await emit(error_of(c))
                    return self._end(c)
                except TRANSPORT_FAULTS as exc:
                    items = judge.close(cut=exc)
                else:
                    items = judge.feed(data) if data else judge.close()
                for item in items:
                    self._note(item)
                    if item.kind == "chunk" or item.kind == "done":
                        progress_at = loop.time() + stall
                if items:
                    await emit(encode(_tapped(tap, items) if tap is not None else items))
            v = judge.verdict
            if v.error_class is not ErrorClass.OK and error_event:
                await emit(error_of(v))
            return self._end(v)
        except ClientGone:
            end = self._end(Classification(ErrorClass.OK, status=resp.status))
            end.client_gone = True
            return end

    @property
    def usage(self) -> dict[str, int] | None:
        """Usage seen so far on this stream (the final usage chunk, when it came)."""
        return self._judge.usage if self._judge is not None else None

    def _end(self, c: Classification) -> StreamEnd:
        if self._span is not None:
            _response_attributes(self._span, None, self.usage)
            if not c.ok:
                tracing.failed(self._span, str(c.error_class), c.detail)
        return StreamEnd(c, usage=self.usage, ttft_s=self._ttft, latency_s=self._clock.monotonic() - self._t0)

    def close(self, *, reuse: bool = False) -> None:
        """Release the upstream connection: back to the pool only when the answer was read to its end."""
        if self._span is not None:
            self._span.end()
            self._span = None
        if self._resp is not None:
            if reuse:
                self._resp.release()
            else:
                self._resp.close()
            self._resp = None


def _attempt_span(cand: Candidate, parent: Span, attempt: int, req: UpstreamRequest, operation: str) -> Span:
    """The CLIENT span of one upstream call (GenAI `chat {model}` or `embeddings {model}`); its traceparent goes
    upstream."""
    p = cand.provider
    span = tracing.client_span(
        f"{operation} {cand.model}",
        parent,
        {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": tracing.genai_provider(cand.adapter, p.flavor, p.base_url),
            "gen_ai.request.model": cand.model,
            "server.address": _host(req.url),
            "turnout.target": cand.target,
            "turnout.attempt": attempt,
        },
    )
    tracing.inject(span, req.headers)
    return span


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]


def _response_attributes(span: Span, model: Any, usage: Any) -> None:
    if isinstance(model, str) and model:
        span.set_attribute("gen_ai.response.model", model)
    if isinstance(usage, dict):
        for key, name in (
            ("prompt_tokens", "gen_ai.usage.input_tokens"),
            ("completion_tokens", "gen_ai.usage.output_tokens"),
        ):
            if isinstance(usage.get(key), int):
                span.set_attribute(name, usage[key])
