"""Bearer-token auth for the status API: scopes `read` and `admin` from `config.auth`.

`admin` implies `read`. When `auth.public_read` is true, read endpoints need no token (a token that is
sent must still be valid). Tokens are compared with `hmac.compare_digest` against every configured token,
so the time taken does not reveal how much of a guess matched, nor which token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from controlplane.config import AuthConfig

__all__ = ["Scope", "Principal", "AuthFailure", "authenticate", "authorize"]

Scope = Literal["read", "admin"]
_RANK = {"read": 1, "admin": 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's configured name (never the token) and its scope; anonymous for public reads."""

    name: str
    scope: Scope | None  # None = anonymous


class AuthFailure(Exception):
    """401 (no/invalid credentials) or 403 (valid token, scope too low); the message never echoes the token."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(message)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthFailure(401, "invalid_authorization", "Authorization header must be 'Bearer <token>'")
    return value.strip()


def authenticate(request: web.Request, auth: AuthConfig) -> Principal:
    """Map the request's bearer token to a Principal; raise AuthFailure(401) for an unknown token."""
    token = _bearer(request)
    if token is None:
        return Principal("anonymous", None)
    given = token.encode()
    match: Principal | None = None
    for i, t in enumerate(auth.tokens):
        # Check every token (no early exit) so timing does not depend on which one matched.
        if hmac.compare_digest(given, t.token.get_secret_value().encode()) and match is None:
            match = Principal(t.name or f"token[{i}]", t.scope)
    if match is None:
        raise AuthFailure(401, "invalid_token", "the bearer token is not valid")
    return match


def authorize(request: web.Request, auth: AuthConfig, needed: Scope) -> Principal:
    """Authenticate and check the scope; raise AuthFailure 401/403 with a JSON-ready message."""
    who = authenticate(request, auth)
    if who.scope is None:
        if needed == "read" and auth.public_read:
            return who
        raise AuthFailure(401, "missing_token", f"this endpoint needs a bearer token with scope '{needed}'")
    if _RANK[who.scope] < _RANK[needed]:
        raise AuthFailure(
            403, "insufficient_scope", f"this endpoint needs scope '{needed}'; the token has '{who.scope}'"
        )
    return who
