"""Writing one simulated answer to the wire, with its timing (TTFT, token rate) and the faults that shape a
body or a stream: keep-alive queueing, truncation, malformed chunks, stalls, resets, mid-stream errors."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from contextlib import suppress
from dataclasses import dataclass

from aiohttp import web

from adapters.sim.catalogue import Behaviour
from adapters.sim.chat import Answer, ChatCall, WireFormat
from adapters.sim.faults import FaultRule, Fired

__all__ = ["Turn", "send_plain", "send_stream", "reset_connection", "hold", "pause", "WAS_RESET"]

WAS_RESET: web.ResponseKey[bool] = web.ResponseKey("sim_reset")  # stats count a reset, not the placeholder 500

# After how many content events (past the preamble) a stream fault strikes (provider-semantics.md §7).
# Stall: "after 3 chunks" counts OpenAI's role chunk, so 2 content events: the stall lands mid-answer.
_CUT = {Behaviour.RESET: 2, Behaviour.STALL: 2, Behaviour.MID_ERROR: 2, Behaviour.MALFORMED: 2}


@dataclass
class Turn:
    """Everything needed to answer one inference request."""

    request: web.Request
    wire: WireFormat
    call: ChatCall
    answer: Answer
    headers: dict[str, str]
    fired: Fired
    flavor: str
    ttft: float
    token_rate: float | None
    stopping: asyncio.Event

    @property
    def fault(self) -> FaultRule | None:
        return self.fired.terminal

    @property
    def behaviour(self) -> Behaviour | None:
        return self.fired.terminal.spec.behaviour if self.fired.terminal else None

    def rate(self) -> float | None:
        slow = self.fired.modifier(Behaviour.SLOW)
        return float(slow[-1].param("rate")) if slow else self.token_rate

    def first_token_delay(self) -> float:
        return self.ttft + sum(float(m.param("seconds", 0)) for m in self.fired.modifier(Behaviour.TTFT))


async def pause(seconds: float, stopping: asyncio.Event) -> bool:
    """Sleep (real time) unless the simulator stops first; True when it is stopping."""
    if seconds <= 0:
        return stopping.is_set()
    with suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()


async def hold(rule: FaultRule, stopping: asyncio.Event, seconds: float | None) -> bool:
    """Wait until the fault is cleared or expires, `seconds` pass, or the simulator stops; True when stopping."""
    waiters = [asyncio.ensure_future(rule.released.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return stopping.is_set()


def reset_connection(request: web.Request) -> web.Response:
    """Abort the TCP connection with RST (SO_LINGER 0); the returned response never reaches the wire."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    resp = web.Response(status=500)
    resp[WAS_RESET] = True
    return resp


async def send_plain(t: Turn) -> web.StreamResponse:
    """A non-streaming answer: the completion JSON, or a fault's broken variant of it."""
    b = t.behaviour
    if b is Behaviour.EMPTY:
        payload = json.dumps(t.wire.empty(t.call)).encode()
    elif b is Behaviour.POLICY:
        payload = json.dumps(t.wire.policy(t.call)).encode()
    else:
        payload = json.dumps(t.wire.completion(t.call, t.answer)).encode()
    rate = t.rate()
    delay = t.first_token_delay() + (t.answer.output_tokens / rate if rate else 0.0)
    if b in (Behaviour.TRUNCATED, Behaviour.MALFORMED, Behaviour.STALL, Behaviour.KEEPALIVE):
        # Written without Content-Length so the body can stop short or trickle.
        resp = web.StreamResponse(status=200, headers={**t.headers, "Content-Type": "application/json"})
        await resp.prepare(t.request)
        with suppress(ConnectionError):
            if b is Behaviour.KEEPALIVE and t.fault is not None:
                # DeepSeek sends blank lines while a non-streaming request is queued.
                if await _trickle(t, resp, t.fault, b"\n"):
                    return resp
                if t.fault.param("then") == "close":
                    await resp.write_eof()
                    return resp
            elif b is Behaviour.MALFORMED:
                payload = b'{"choices":[{"message":{"content":"ab'
            elif b is Behaviour.TRUNCATED:
                payload = payload[: len(payload) // 2]
            elif b is Behaviour.STALL and t.fault is not None:
                await resp.write(payload[: len(payload) // 2])
                await hold(t.fault, t.stopping, None)
                return reset_connection(t.request)
            if await pause(delay, t.stopping):
                return reset_connection(t.request)
            await resp.write(payload)
            await resp.write_eof()
        return resp
    if await pause(delay, t.stopping):
        return reset_connection(t.request)
    return web.Response(body=payload, status=200, headers=t.headers, content_type="application/json")


async def _trickle(t: Turn, resp: web.StreamResponse, rule: FaultRule, beat: bytes | None) -> bool:
    """Keep-alives every `interval` for `seconds` (real time); True when the simulator is stopping."""
    seconds, interval = float(rule.param("seconds", 3.0)), max(0.01, float(rule.param("interval", 1.0)))
    waited = 0.0
    while waited < seconds:
        step = min(interval, seconds - waited)
        if await pause(step, t.stopping):
            return True
        waited += step
        if beat is not None:
            await resp.write(beat)
    return False


async def send_stream(t: Turn) -> web.StreamResponse:
    """An SSE answer in the family's framing, timed by TTFT and token rate, shaped by stream faults."""
    resp = web.StreamResponse(
        status=200, headers={**t.headers, "Content-Type": t.wire.stream_content_type, "Cache-Control": "no-cache"}
    )
    await resp.prepare(t.request)
    try:
        await _stream_body(t, resp)
    except ConnectionError:
        pass  # the client went away
    return resp


async def _stream_body(t: Turn, resp: web.StreamResponse) -> None:
    b, rule, wire, call = t.behaviour, t.fault, t.wire, t.call
    if b is Behaviour.KEEPALIVE and rule is not None:
        if await _trickle(t, resp, rule, wire.keepalive(t.flavor)):
            return
        if rule.param("then") == "close":  # DeepSeek gives up on a queued request after 10 minutes
            await resp.write_eof()
            return
    if b is Behaviour.EMPTY or b is Behaviour.POLICY:
        for ev in wire.stream_empty(call) if b is Behaviour.EMPTY else wire.stream_policy(call):
            await resp.write(ev)
        await resp.write_eof()
        return
    if rule is not None and rule.spec.id == "OR-MID":
        await resp.write(wire.keepalive("openrouter") or b"")
    for ev in wire.stream_preamble(call, t.answer):
        await resp.write(ev)
    if await pause(t.first_token_delay(), t.stopping):
        return
    body = (
        wire.stream_tool(call, t.answer)
        if t.answer.tool_call
        else [wire.stream_token(call, tok) for tok in t.answer.tokens]
    )
    cut = _CUT.get(b) if b is not None else None
    if rule is not None and rule.spec.id == "OR-MID":
        cut = 1
    rate = t.rate()
    for i, ev in enumerate(body):
        if cut is not None and i >= cut:
            break
        if i and rate and await pause(1.0 / rate, t.stopping):
            return
        await resp.write(ev)
    if b is Behaviour.RESET:
        reset_connection(t.request)
    elif b is Behaviour.STALL and rule is not None:
        await hold(rule, t.stopping, None)
        reset_connection(t.request)
    elif b is Behaviour.MID_ERROR and rule is not None:
        for ev in wire.stream_mid_error(rule.spec.id):
            await resp.write(ev)
        await resp.write_eof()
    elif b is Behaviour.MALFORMED:
        await resp.write(wire.stream_malformed())
        await resp.write_eof()
    elif b is Behaviour.TRUNCATED:
        await resp.write_eof()  # content, then a clean close without the terminator
    else:
        for ev in wire.stream_finish(call, t.answer):
            await resp.write(ev)
        await resp.write_eof()
