"""OAuth2 access tokens for Vertex AI, by google-auth (the `turnout[gcp]` extra), with the `cloud-platform` scope.

Credentials come from the provider's `credentials_file` (a service-account JSON, `${GOOGLE_APPLICATION_CREDENTIALS}`)
or, without one, from application default credentials (the environment, gcloud, the metadata server). A token
is renewed five minutes before it expires; the renewal is a blocking HTTP call in google-auth, so it runs in a
thread from `prepare()`. Tokens are held in memory only and never logged.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from controlplane.domain import Classification, ErrorClass
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = ["SCOPE", "GoogleTokens"]

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_RENEW_BEFORE_S = 300.0


def _fail(provider_id: str, exc: BaseException) -> ProviderError:
    # google-auth's RefreshError says whether the token endpoint refused (auth) or could not be reached.
    from google.auth import exceptions

    if isinstance(exc, exceptions.TransportError):
        c = Classification(ErrorClass.CONNECT, code="token_endpoint", detail="token endpoint unreachable")
    else:
        c = Classification(
            ErrorClass.AUTH, code="no_credentials", detail=f"no Google access token: {type(exc).__name__}"
        )
    return ProviderError(provider_id, None, c)


def _key(provider: ProviderConfig) -> tuple[str, str | None]:
    # A reload that names another credentials file must not keep using the old file's token.
    return provider.id, provider.credentials_file


class GoogleTokens:
    """Per provider (and credentials file): its google-auth credentials and the access token now in use."""

    def __init__(self) -> None:
        self._creds: dict[tuple[str, str | None], Any] = {}
        self._locks: dict[tuple[str, str | None], asyncio.Lock] = {}

    def token(self, provider: ProviderConfig) -> str | None:
        creds = self._creds.get(_key(provider))
        return str(creds.token) if creds is not None and creds.token else None

    @staticmethod
    def _fresh(creds: Any) -> bool:
        if creds is None or not creds.token:
            return False
        expiry = creds.expiry  # naive UTC in google-auth; None = no expiry known
        if expiry is None:
            return True
        left = expiry.replace(tzinfo=UTC).timestamp() - time.time()
        return bool(left > _RENEW_BEFORE_S)

    async def prepare(self, provider: ProviderConfig) -> None:
        key = _key(provider)
        if self._fresh(self._creds.get(key)):
            return
        async with self._locks.setdefault(key, asyncio.Lock()):
            creds = self._creds.get(key)
            if self._fresh(creds):
                return
            try:
                if creds is None:
                    creds = await asyncio.to_thread(_load, provider)
                    self._creds[key] = creds
                await asyncio.to_thread(_refresh, creds)
            except ProviderError:
                raise
            except Exception as exc:  # google-auth's RefreshError, DefaultCredentialsError, TransportError
                raise _fail(provider.id, exc) from exc

    def forget_tokens(self) -> None:
        """A token was refused (401) before its expiry (revoked, or the clock disagrees): renew on next use."""
        for creds in self._creds.values():
            creds.token = None

    def expiry(self, provider: ProviderConfig) -> datetime | None:
        creds = self._creds.get(_key(provider))
        return None if creds is None or creds.expiry is None else creds.expiry.replace(tzinfo=UTC)


def _load(provider: ProviderConfig) -> Any:
    if provider.credentials_file:
        from google.oauth2 import service_account

        load = service_account.Credentials.from_service_account_file
        return load(provider.credentials_file, scopes=[SCOPE])  # type: ignore[no-untyped-call]
    import google.auth

    creds, _project = google.auth.default(scopes=[SCOPE])
    return creds


def _refresh(creds: Any) -> None:
    from google.auth.transport.requests import Request

    creds.refresh(Request())
