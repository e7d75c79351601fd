"""One upstream attempt: send, honour the connect / first-byte / stall timeouts, classify, pump the stream.

An attempt has two phases. `open()` runs until the answer can be committed to the client: the whole body
for a JSON request, the first chunk for a stream. Anything that goes wrong in that phase is a classified
outcome the proxy may fail over on, because nothing has reached the client yet. `pump()` then forwards the
rest of a stream; a failure there can only end the client's stream with an error event. Provider faults
never raise out of this module; they come back as a `Classification`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from adapters.base import Adapter, StreamItem, StreamTranslator, UpstreamRequest
from adapters.calls import MAX_BODY_BYTES
from controlplane import tracing
from controlplane.clock import Clock
from controlplane.domain import Classification, ErrorClass, Headroom
from controlplane.errors import ProviderError
from dataplane.http.upstream import (
    UpstreamBodyTooLarge,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamResponse,
)
from dataplane.selection import Candidate

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Timeouts", "Opened", "StreamEnd", "UpstreamAttempt", "ClientGone", "sse_error_event"]

_ERROR_BODY_LIMIT = 1 << 20  # an error body larger than this is garbage anyway; never buffer a 10 MB page
# Failures while reading an answer that has started: cut off, reset, not HTTP, undecodable.
_READ_ERRORS = (UpstreamClosed, UpstreamProtocolError, UpstreamBodyTooLarge, OSError)
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


def _fail(error_class: ErrorClass, detail: str, status: int | None = None) -> Classification:
    return Classification(error_class, status=status, detail=detail)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _before_answer(exc: Exception) -> Classification:
    """The class of a failure before any answer: no connection, a connection dropped, or bytes that are not HTTP."""
    if isinstance(exc, UpstreamConnectError):
        detail = "connect timeout" if "timeout" in str(exc) else f"cannot connect: {exc}"
        return _fail(ErrorClass.CONNECT, detail)
    if isinstance(exc, UpstreamProtocolError):
        return _fail(ErrorClass.BAD_RESPONSE, f"unreadable answer: {exc}")
    if isinstance(exc, OSError):  # UpstreamClosed (a ConnectionError) and resets
        return _fail(ErrorClass.CONNECT, f"connection failed before a response: {_why(exc)}")
    raise exc


def sse_error_event(c: Classification) -> bytes:
    """The OpenAI-style mid-stream error event that ends a client stream."""
    err = {
        "message": c.detail or f"upstream {c.error_class}",
        "type": "upstream_error",
        "code": str(c.error_class),
        "param": None,
    }
    return b"data: " + orjson.dumps({"error": err}) + b"\n\n"


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
    ) -> None:
        self.cand, self.adapter, self.stream = cand, adapter, stream
        self._pool, self._body, self._timeouts = pool, body, timeouts
        self._clock, self._deadline = clock, deadline
        self._include_usage = include_usage  # False: drop the usage-only chunk we asked the upstream for
        self._resp: UpstreamResponse | None = None
        self._translator: StreamTranslator | None = None
        self._t0 = 0.0
        self._ttft: float | None = None
        self._usage: dict[str, int] | None = None
        self._trace_parent, self._attempt_no = trace_parent, attempt  # the request's span: this attempt's is a child
        self._span: Span | None = None
        self._model_noted = False

    # -- phase 1: until committable ---------------------------------------------------------------
    async def open(self) -> Opened:
        req = self.adapter.build_request(self.cand.provider, self.cand.model, self._body, stream=self.stream)
        if self._trace_parent is None:
            return await self._open(req)
        self._span = _attempt_span(self.cand, self._trace_parent, self._attempt_no, req)
        opened = await self._open(req)
        if not opened.ok:
            tracing.failed(self._span, str(opened.classification.error_class), opened.classification.detail)
        elif opened.response is not None:
            _response_attributes(self._span, opened.response.get("model"), opened.response.get("usage"))
        return opened

    async def _open(self, req: UpstreamRequest) -> Opened:
        loop = asyncio.get_running_loop()
        self._t0 = self._clock.monotonic()
        first_byte_at = min(loop.time() + self._timeouts.first_byte, self._deadline)
        if not self.stream:
            return await self._json(req, first_byte_at)
        try:
            async with asyncio.timeout_at(first_byte_at):
                self._resp = await self._pool.request(req.method, req.url, req.headers, req.body)
        except TimeoutError:
            return Opened(_fail(ErrorClass.TIMEOUT, "no response headers within the first-byte timeout"))
        except Exception as exc:
            return Opened(_before_answer(exc))
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
        except TimeoutError:
            status = resp.status if resp is not None else None
            return Opened(_fail(ErrorClass.TIMEOUT, "no complete answer within the first-byte timeout", status))
        except Exception as exc:
            if resp is None:
                return Opened(_before_answer(exc))
            if not isinstance(exc, _READ_ERRORS):
                raise
            return Opened(
                _fail(ErrorClass.BAD_RESPONSE, f"response body cut short or unreadable: {_why(exc)}", resp.status)
            )
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
        except TimeoutError:
            return Opened(_fail(ErrorClass.TIMEOUT, "error body not complete in time", resp.status), headroom=headroom)
        except _READ_ERRORS as exc:
            return Opened(
                _fail(ErrorClass.BAD_RESPONSE, f"error body cut short: {_why(exc)}", resp.status), headroom=headroom
            )
        return Opened(
            self._classify(resp, body), latency_s=self._clock.monotonic() - self._t0, headroom=headroom, body=body
        )

    def _classify(self, resp: UpstreamResponse, body: bytes) -> Classification:
        try:
            return self.adapter.classify(resp.status, resp.headers, body)
        except Exception as exc:
            return _fail(ErrorClass.BAD_RESPONSE, f"unclassifiable error answer: {type(exc).__name__}", resp.status)

    async def _first_chunk(self, resp: UpstreamResponse, headroom: Headroom | None, first_byte_at: float) -> Opened:
        """Read until the first real chunk; keep-alives and pings do not count as progress (TTFT timeout)."""
        tr = self._translator = self.adapter.stream_translator(model=self.cand.model)
        buffered: list[StreamItem] = []
        try:
            async with asyncio.timeout_at(first_byte_at):
                while True:
                    data = await resp.readany()
                    items = tr.feed(data) if data else tr.close()
                    for item in items:
                        if item.kind == "error":
                            c = item.classification or _fail(ErrorClass.BAD_RESPONSE, "stream error")
                            return Opened(c, headroom=headroom)
                        if item.kind == "done" and not any(i.kind == "chunk" for i in buffered):
                            return Opened(
                                _fail(ErrorClass.BAD_RESPONSE, "stream ended before any chunk", resp.status),
                                headroom=headroom,
                            )
                        buffered.append(item)
                        self._note(item)
                    if any(i.kind in ("chunk", "done") for i in buffered):
                        break
                    if not data:  # closed without an error item from the translator: still not a clean end
                        return Opened(
                            _fail(ErrorClass.BAD_RESPONSE, "stream closed before any chunk", resp.status),
                            headroom=headroom,
                        )
        except TimeoutError:
            return Opened(
                _fail(ErrorClass.TIMEOUT, "no chunk within the first-byte timeout", resp.status), headroom=headroom
            )
        except _READ_ERRORS as exc:
            return Opened(
                _fail(ErrorClass.BAD_RESPONSE, f"stream cut before any chunk: {_why(exc)}", resp.status),
                headroom=headroom,
            )
        except Exception as exc:  # translator bug on odd bytes: classified, never a crash
            return Opened(
                _fail(ErrorClass.BAD_RESPONSE, f"unreadable stream: {type(exc).__name__}", resp.status),
                headroom=headroom,
            )
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
        if item.usage:
            self._usage = item.usage
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

    async def pump(self, emit: Callable[[bytes], Awaitable[None]], buffered: list[StreamItem]) -> StreamEnd:
        """Forward the buffered items and the rest of the stream; end with [DONE] or an error event."""
        assert self._resp is not None and self._translator is not None
        resp, tr = self._resp, self._translator
        loop = asyncio.get_running_loop()
        stall = self._timeouts.stall
        try:
            await emit(self.encode(buffered))
            if any(i.kind == "done" for i in buffered):
                return self._end(Classification(ErrorClass.OK, status=resp.status))
            progress_at = loop.time() + stall
            cut: BaseException | None
            while True:
                try:
                    async with asyncio.timeout_at(progress_at):
                        data = await resp.readany()
                except TimeoutError:
                    c = _fail(ErrorClass.TIMEOUT, "stream stalled after content was forwarded", resp.status)
                    await emit(sse_error_event(c))
                    return self._end(c)
                except _READ_ERRORS as exc:
                    data, cut = b"", exc
                else:
                    cut = None
                try:
                    items = tr.feed(data) if data else tr.close()
                except Exception as exc:
                    items = [
                        StreamItem(
                            "error",
                            classification=_fail(ErrorClass.BAD_RESPONSE, f"unreadable stream: {type(exc).__name__}"),
                        )
                    ]
                out: list[StreamItem] = []
                for item in items:
                    if item.kind == "error":
                        await emit(self.encode(out))
                        c = item.classification or _fail(ErrorClass.BAD_RESPONSE, "stream error")
                        await emit(sse_error_event(c))
                        return self._end(c)
                    out.append(item)
                    self._note(item)
                    if item.kind in ("chunk", "done"):
                        progress_at = loop.time() + stall
                if out:
                    await emit(self.encode(out))
                if any(i.kind == "done" for i in out):
                    return self._end(Classification(ErrorClass.OK, status=resp.status))
                if not data:
                    # Upstream closed without its terminator and the translator said nothing: truncated.
                    why = (
                        f"upstream stream cut short ({type(cut).__name__})"
                        if cut
                        else "upstream stream ended without its terminator"
                    )
                    c = _fail(ErrorClass.BAD_RESPONSE, why, resp.status)
                    await emit(sse_error_event(c))
                    return self._end(c)
        except ClientGone:
            end = self._end(Classification(ErrorClass.OK, status=resp.status))
            end.client_gone = True
            return end

    @property
    def usage(self) -> dict[str, int] | None:
        """Usage seen so far on this stream (the final usage chunk, when it came)."""
        return self._usage

    def _end(self, c: Classification) -> StreamEnd:
        if self._span is not None:
            _response_attributes(self._span, None, self._usage)
            if not c.ok:
                tracing.failed(self._span, str(c.error_class), c.detail)
        return StreamEnd(c, usage=self._usage, ttft_s=self._ttft, latency_s=self._clock.monotonic() - self._t0)

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


def _attempt_span(cand: Candidate, parent: Span, attempt: int, req: UpstreamRequest) -> Span:
    """The CLIENT span of one upstream call (GenAI inference: `chat {model}`); its traceparent goes upstream."""
    p = cand.provider
    span = tracing.client_span(
        f"chat {cand.model}",
        parent,
        {
            "gen_ai.operation.name": "chat",
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
