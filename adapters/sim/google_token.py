"""The simulator's Google OAuth2 token endpoint, for service-account credentials (google-auth's JWT-bearer grant).

The simulator holds one RSA key per Vertex provider and hands out the service-account JSON that goes with it
(`service_account_info`), its `token_uri` pointing here. google-auth signs an assertion with that key and posts
it; the endpoint checks the signature, the audience and the lifetime with google-auth's own JWT code, and issues
an access token valid for `lifetime` seconds of the simulator's (injected) clock, so a test can let it expire.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from controlplane.clock import Clock

__all__ = ["TokenIssuer", "GRANT_TYPE"]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


@dataclass
class TokenIssuer:
    """Issues and checks bearer tokens for one simulated Vertex provider."""

    clock: Clock
    lifetime: float = 3600.0
    client_email: str = "turnout-sim@sim-project.iam.gserviceaccount.com"
    _tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry on the simulator clock
    _private_pem: str = ""
    _public_pem: str = ""

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self._public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def service_account_info(self, token_uri: str, project: str) -> dict[str, Any]:
        """A service-account JSON document (as Google issues them) whose key this endpoint trusts."""
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "sim-key-1",
            "private_key": self._private_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "token_uri": token_uri,
        }

    def issue(self, form: dict[str, str], token_uri: str) -> tuple[int, dict[str, Any]]:
        """(status, body) for one token request, as Google's endpoint answers it."""
        from google.auth import exceptions, jwt

        if form.get("grant_type") != GRANT_TYPE or not form.get("assertion"):
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
        try:
            # google-auth addresses its assertion to Google's own token URI whatever `token_uri` says
            audience = [token_uri, GOOGLE_TOKEN_URI]
            claims = jwt.decode(form["assertion"], certs=self._public_pem, audience=audience)  # type: ignore[no-untyped-call]
        except (ValueError, exceptions.GoogleAuthError) as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({exc})"}
        if claims.get("iss") != self.client_email:
            return 400, {"error": "invalid_grant", "error_description": "Invalid issuer."}
        token = "ya29.sim-" + secrets.token_urlsafe(24)
        self._tokens[token] = self.clock.monotonic() + self.lifetime
        return 200, {"access_token": token, "expires_in": int(self.lifetime), "token_type": "Bearer"}

    def valid(self, authorization: str) -> bool:
        """Is `Authorization: Bearer <token>` a token this endpoint issued that has not expired?"""
        if not authorization.lower().startswith("bearer "):
            return False
        expiry = self._tokens.get(authorization[7:].strip())
        return expiry is not None and self.clock.monotonic() < expiry

    def grant(self) -> str:
        """A valid token without the JWT dance (for clients given a bare access token, e.g. AnthropicVertex)."""
        token = "ya29.sim-" + secrets.token_urlsafe(24)
        self._tokens[token] = self.clock.monotonic() + self.lifetime
        return token
