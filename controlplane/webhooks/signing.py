"""Standard Webhooks signing: `whsec_` secrets and `v1,` HMAC-SHA256 signatures over `id.timestamp.body`.

Follows https://www.standardwebhooks.com/ so any receiver using the `standardwebhooks` package (or Svix
libraries) verifies Turnout's deliveries without custom code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["SECRET_PREFIX", "generate_secret", "sign", "signed_headers", "verify"]

SECRET_PREFIX = "whsec_"
# 24 random bytes (192 bits) is what Svix issues; the spec asks for 24–64 bytes.
_SECRET_BYTES = 24


def generate_secret() -> str:
    """A fresh endpoint secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    key = base64.b64decode(raw + "=" * (-len(raw) % 4))
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))."""
    to_sign = msg_id.encode() + b"." + str(int(timestamp)).encode() + b"." + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers plus the JSON content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(secret: str, msg_id: str, timestamp: int, body: bytes, signature_header: str) -> bool:
    """True when any `v1,` signature in the (space-separated) header matches; timing-safe."""
    expected = sign(secret, msg_id, timestamp, body).encode()
    return any(hmac.compare_digest(expected, s.encode()) for s in signature_header.split())
