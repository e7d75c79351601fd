"""Per-request routing preferences: the optional `turnout` body object and the `x-turnout-*` headers.

In the spirit of OpenRouter's provider preferences, a caller may set an explicit order, forbid fallbacks,
deny jurisdictions, require zero data retention or cap the price, ask for the decision trail and tag the
request for cost attribution. The body object wins over a header for the same field. The `turnout` object
is removed from the body before it is forwarded upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Preferences", "PreferenceError", "parse_preferences", "NO_PREFERENCES"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_KNOWN = ("order", "allow_fallbacks", "deny_jurisdictions", "require_zero_retention", "max_price", "debug", "tag")


class PreferenceError(ValueError):
    """A malformed preference; `field` names it as the caller wrote it (`turnout.order`, `x-turnout-max-price`)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True, slots=True)
class Preferences:
    """What one request asked for. Empty/None fields mean "no preference"."""

    order: tuple[str, ...] = ()  # target keys (`provider/model`) or provider ids, tried first, in this order
    allow_fallbacks: bool = True  # False: only the first candidate (or only the `order` list)
    deny_jurisdictions: frozenset[str] = frozenset()
    require_zero_retention: bool = False
    max_price: float | None = None  # USD per million output tokens, like RoutePolicy.max_price
    debug: bool = False  # add the decision trail to the response
    tag: str | None = None  # caller tag for the decision log (`user` field or `x-turnout-tag`)

    @property
    def filters(self) -> bool:
        """True when the preferences can exclude or reorder candidates (the common case is False: fast path)."""
        return bool(
            self.order or not self.allow_fallbacks or self.deny_jurisdictions or self.require_zero_retention
        ) or (self.max_price is not None)


NO_PREFERENCES = Preferences()


def _bool(value: object, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise PreferenceError(field, f"expected true or false, got {value!r}")


def _str_list(value: object, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise PreferenceError(field, f"expected a list of strings, got {type(value).__name__}")
    return tuple(v for v in items if v)


def _price(value: object, field: str) -> float:
    if isinstance(value, bool):
        raise PreferenceError(field, f"expected a non-negative number, got {value!r}")
    try:
        price = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PreferenceError(field, f"expected a non-negative number, got {value!r}") from None
    if price < 0 or price != price:
        raise PreferenceError(field, f"expected a non-negative number, got {value!r}")
    return price


def _tag(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise PreferenceError(field, f"expected a string, got {type(value).__name__}")
    # Bounded: it is stored in the decision log and summarised, never a free-form blob.
    return value[:128]


def parse_preferences(body: dict[str, Any], headers: Mapping[str, str]) -> Preferences:
    """Read preferences from the body's `turnout` object (popped from `body`) and `x-turnout-*` headers.

    Raises PreferenceError naming the field on a malformed value or an unknown key.
    """
    raw = body.pop("turnout", None)
    # The header scan is skipped on the common path: a request without any x-turnout-* header.
    fields: dict[str, tuple[object, str]] = {}
    for name in (
        "x-turnout-order",
        "x-turnout-allow-fallbacks",
        "x-turnout-deny-jurisdictions",
        "x-turnout-require-zero-retention",
        "x-turnout-max-price",
        "x-turnout-debug",
        "x-turnout-tag",
    ):
        header = headers.get(name)
        if header is not None:
            fields[name[len("x-turnout-") :].replace("-", "_")] = (header, name)
    if raw is not None:
        if not isinstance(raw, dict):
            raise PreferenceError("turnout", f"expected an object, got {type(raw).__name__}")
        for key, value in raw.items():
            if key not in _KNOWN:
                raise PreferenceError(f"turnout.{key}", f"unknown preference; known: {', '.join(_KNOWN)}")
            fields[key] = (value, f"turnout.{key}")
    user = body.get("user")
    if "tag" not in fields and isinstance(user, str) and user:
        fields["tag"] = (user, "user")
    if not fields:
        return NO_PREFERENCES
    out: dict[str, Any] = {}
    for key, (value, where) in fields.items():
        if key == "order":
            out["order"] = _str_list(value, where)
        elif key == "deny_jurisdictions":
            out["deny_jurisdictions"] = frozenset(_str_list(value, where))
        elif key in ("allow_fallbacks", "require_zero_retention", "debug"):
            out[key] = _bool(value, where)
        elif key == "max_price":
            out["max_price"] = None if value is None else _price(value, where)
        elif key == "tag":
            out["tag"] = _tag(value, where)
    return Preferences(**out)
