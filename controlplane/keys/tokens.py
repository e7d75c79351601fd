"""Client keys as strings: `tk_<id>_<secret>`, how they are made, hashed and read back.

The id (8 lowercase letters and digits) is public: logs, the decision log, metrics-free attribution and the API
name a key by it. The secret (32 random bytes, base64url) is shown once and only its SHA-256 is stored: a key
is 256 random bits, so a fast hash is enough (nobody can guess back through it), and checking it costs about a
microsecond on the hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

__all__ = ["PREFIX", "ID_LENGTH", "new_key_id", "new_key", "hash_key", "key_id_of", "matches"]

PREFIX = "tk_"
ID_LENGTH = 8
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_CHARS = frozenset(_ID_ALPHABET)
_SECRET_BYTES = 32


def new_key_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def new_key(key_id: str) -> str:
    """A fresh key for `key_id` (a rotation keeps the id and draws a new secret)."""
    return f"{PREFIX}{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def hash_key(key: str) -> str:
    """What the store keeps: the key's SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a presented key, or None when it is not shaped like one of ours."""
    if not key.startswith(PREFIX) or len(key) < len(PREFIX) + ID_LENGTH + 2:
        return None
    key_id = key[len(PREFIX) : len(PREFIX) + ID_LENGTH]
    if key[len(PREFIX) + ID_LENGTH] != "_" or not _ID_CHARS.issuperset(key_id):
        return None
    return key_id


def matches(key: str, digest_hex: str) -> bool:
    """Constant-time comparison of a presented key against a stored hash."""
    return hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(), digest_hex)
