"""What a client key is, as the API, the CLI and the data plane see it: the request to make one (`KeySpec`), its
public record (`KeyRecord`, never the key nor its hash) and what the data plane's key ring holds (`RingKey`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.keys.periods import Period

__all__ = ["KeySpec", "KeyRecord", "RingKey", "Ring", "KeyChange", "iso"]

KeyChange = Literal["created", "revoked", "rotated"]  # what the key store announces in process


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class KeySpec(BaseModel):
    """`POST /api/v1/keys` and `turnout keys create`: everything but `name` optional."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="who the key is for (team, service)")
    routes: list[str] | None = Field(default=None, description="routes (or provider/model targets) it may use; all")
    rpm: int | None = Field(default=None, ge=1, le=10_000_000, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, le=10_000_000_000, description="tokens (in + out) per minute")
    budget_usd: float | None = Field(default=None, gt=0, le=1e9, description="estimated spend per budget_period")
    budget_period: Period = Field(default="month", description="day | week | month (UTC calendar)")
    expires_at: datetime | None = Field(default=None, description="ISO 8601; a date alone means its midnight UTC")

    @field_validator("routes")
    @classmethod
    def _routes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("an empty list would allow nothing; leave routes out to allow every route")
        for i, r in enumerate(v):
            if not isinstance(r, str) or not r.strip():
                raise ValueError(f"routes[{i}] must be a route name")
        return list(dict.fromkeys(r.strip() for r in v))

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key's public record: its id, limits and state. Never the key, never its hash."""

    id: str
    name: str
    routes: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: str
    expires_at: float | None
    created_at: float
    rotated_at: float | None
    revoked_at: float | None

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def public(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state(now),
            "routes": list(self.routes) if self.routes is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "rotated_at": iso(self.rotated_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class RingKey:
    """One usable key as the data plane holds it: the hash to compare against, its limits, and its spend this
    budget period as the store knew it when the ring was read."""

    id: str
    name: str
    key_hash: str
    routes: frozenset[str] | None
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: str
    expires_at: float | None
    spent_usd: float
    period_end: float

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "hash": self.key_hash,
            "routes": sorted(self.routes) if self.routes is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "expires_at": self.expires_at,
            "spent_usd": self.spent_usd,
            "period_end": self.period_end,
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> RingKey:
        """From a control replica's `GET /api/v1/keys/ring`; KeyError/TypeError/ValueError on a malformed entry."""
        routes = d["routes"]

        def opt_num(name: str, kind: type[int] | type[float]) -> Any:
            v = d.get(name)
            return None if v is None else kind(v)

        return cls(
            id=str(d["id"]),
            name=str(d["name"]),
            key_hash=str(d["hash"]),
            routes=None if routes is None else frozenset(str(r) for r in routes),
            rpm=opt_num("rpm", int),
            tpm=opt_num("tpm", int),
            budget_usd=opt_num("budget_usd", float),
            budget_period=str(d["budget_period"]),
            expires_at=opt_num("expires_at", float),
            spent_usd=float(d["spent_usd"]),
            period_end=float(d["period_end"]),
        )


@dataclass(frozen=True, slots=True)
class Ring:
    """Every usable key (not revoked, not expired) and whether any key was ever made (then keys are required)."""

    any_keys: bool
    keys: tuple[RingKey, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"any_keys": self.any_keys, "keys": [k.to_wire() for k in self.keys]}

    @classmethod
    def from_wire(cls, d: Any) -> Ring:
        if not isinstance(d, dict) or not isinstance(d.get("keys"), list):
            raise ValueError("a key ring is an object with a keys list")
        return cls(any_keys=bool(d["any_keys"]), keys=tuple(RingKey.from_wire(k) for k in d["keys"]))
