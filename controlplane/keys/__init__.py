"""Client keys for the data plane: their strings and hashes, tables, budget periods, records and store."""

from __future__ import annotations

from controlplane.keys.model import KeyRecord, KeySpec, Ring, RingKey
from controlplane.keys.periods import PERIODS, period_bounds
from controlplane.keys.store import KeyChange, KeyStore, KeyUse, on_change
from controlplane.keys.tokens import PREFIX, hash_key, key_id_of, matches

__all__ = [
    "KeyChange",
    "KeyRecord",
    "KeySpec",
    "KeyStore",
    "KeyUse",
    "PERIODS",
    "PREFIX",
    "Ring",
    "RingKey",
    "hash_key",
    "key_id_of",
    "matches",
    "on_change",
    "period_bounds",
]
