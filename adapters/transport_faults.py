"""The one table from transport exceptions to error classes, used by probes and live traffic alike.

Probes talk to upstreams through aiohttp, the data plane through its own pool (dataplane/http/upstream.py,
whose exceptions subclass the two types below or the standard `OSError` family). Both translate a transport
exception here, once, so a refused connection, a reset or a hang gets the same class whoever met it.

The phase matters, and only in one way (provider-semantics.md §6): a fault *before* any answer is `connect`
(DNS, refused, reset, TLS: nothing reached the model; the data plane retries once, then fails over); the same
fault *after* the answer started is a cut-off answer, `bad_response` (truncated). A timeout is `timeout` in
either phase; bytes that are not HTTP, or a body over the cap, are `bad_response` in either phase.
"""

from __future__ import annotations

import aiohttp

from adapters.wire.common import short_detail
from controlplane.domain import Classification, ErrorClass

__all__ = [
    "BodyTooLarge",
    "NotHTTP",
    "TRANSPORT_CLASSES",
    "TRANSPORT_FAULTS",
    "transport_class",
    "transport_fault",
]


class NotHTTP(Exception):
    """The upstream's bytes are not an HTTP answer we can read (malformed, or an unknown content encoding)."""


class BodyTooLarge(Exception):
    """The answer's body is over the caller's limit."""


# Looked up along the exception's MRO, most specific type first, so a subclass listed here wins over its base
# (aiohttp's ServerTimeoutError is both a ClientConnectionError and a TimeoutError: it is a timeout).
TRANSPORT_CLASSES: dict[type[BaseException], ErrorClass] = {
    BodyTooLarge: ErrorClass.BAD_RESPONSE,
    NotHTTP: ErrorClass.BAD_RESPONSE,
    aiohttp.ClientResponseError: ErrorClass.BAD_RESPONSE,  # a malformed HTTP answer (aiohttp's parser said so)
    aiohttp.ClientPayloadError: ErrorClass.BAD_RESPONSE,  # the body broke off or was mis-encoded
    aiohttp.InvalidURL: ErrorClass.CONNECT,
    aiohttp.ServerTimeoutError: ErrorClass.TIMEOUT,
    TimeoutError: ErrorClass.TIMEOUT,  # asyncio.timeout and asyncio.TimeoutError are this type
    aiohttp.ClientError: ErrorClass.CONNECT,  # connector, disconnect, reset: no usable connection
    OSError: ErrorClass.CONNECT,  # refused, reset, DNS, TLS (ssl.SSLError), and the pool's connect errors
}

# The exceptions a transport call may be caught by: `except TRANSPORT_FAULTS as exc`.
TRANSPORT_FAULTS: tuple[type[BaseException], ...] = tuple(TRANSPORT_CLASSES)

_CODES = {
    BodyTooLarge: "too_large",
    NotHTTP: "bad_http",
    aiohttp.ClientResponseError: "bad_http",
    aiohttp.ClientPayloadError: "truncated",
    aiohttp.InvalidURL: "invalid_url",
}


def _entry(exc: BaseException) -> type[BaseException] | None:
    for t in type(exc).__mro__:
        if t in TRANSPORT_CLASSES:
            return t
    return None


def transport_class(exc: BaseException, *, answer_started: bool = False) -> ErrorClass | None:
    """The class of a transport exception, or None when `exc` is not a transport fault (a bug: let it raise)."""
    t = _entry(exc)
    if t is None:
        return None
    cls = TRANSPORT_CLASSES[t]
    return ErrorClass.BAD_RESPONSE if answer_started and cls is ErrorClass.CONNECT else cls


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def transport_fault(
    exc: BaseException, *, answer_started: bool = False, detail: str | None = None, status: int | None = None
) -> Classification:
    """`exc` classified (see the module docstring); `detail` replaces the default text when the caller knows more
    (which timeout ran out). Raises `exc` itself when it is not a transport fault: a bug is never a class."""
    t = _entry(exc)
    if t is None:
        raise exc
    cls = TRANSPORT_CLASSES[t]
    code = _CODES.get(t)
    if cls is ErrorClass.TIMEOUT:
        code, default = "timeout", f"no answer in time ({type(exc).__name__})"
    elif cls is ErrorClass.CONNECT and answer_started:
        cls, code, default = ErrorClass.BAD_RESPONSE, "truncated", f"answer cut off: {_why(exc)}"
    elif cls is ErrorClass.CONNECT:
        code, default = code or "connect", f"cannot connect: {_why(exc)}"
    elif code == "too_large":
        default = f"body over the size cap ({_why(exc)})"
    elif code == "truncated":
        default = f"answer cut off: {_why(exc)}"
    else:
        default = f"unreadable answer: {_why(exc)}"
    return Classification(cls, status=status, code=code, detail=detail if detail is not None else short_detail(default))
