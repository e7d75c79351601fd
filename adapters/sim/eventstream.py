"""Writing the AWS binary event stream (`application/vnd.amazon.eventstream`) for the simulator's Bedrock.

Each message: total length, headers length, prelude CRC32, headers (name, type 7 = string, value), payload,
message CRC32. Turnout and boto3 read it with botocore's decoder; writing it is these few lines.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32

__all__ = ["frame", "event", "exception"]


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message."""
    head = b"".join(
        bytes([len(k.encode())]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack(">I", crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack(">I", crc32(message))


def event(event_type: str, body: object) -> bytes:
    """A ConverseStream event (`contentBlockDelta`, `messageStop`, …)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    return frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception(exception_type: str, message: str) -> bytes:
    """An in-stream exception (`throttlingException`, `modelStreamErrorException`, …)."""
    payload = json.dumps({"message": message}).encode()
    return frame(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}, payload
    )
