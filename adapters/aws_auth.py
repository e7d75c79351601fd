"""AWS credentials and SigV4 signing for Bedrock, both by botocore (the `turnout[aws]` extra), never hand-written.

Credentials come from the provider's `aws_access_key_id` / `aws_secret_access_key` / `aws_session_token` when
they are set, else from botocore's default chain (environment, shared profile, container or instance role),
whose refreshable credentials botocore renews before they expire. A refresh may touch the network (the
instance metadata service, STS), so it runs in a thread from `prepare()`; signing itself is pure computation
and runs in `sign()`, on the request exactly as it will be sent (the percent-encoded path included).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from controlplane.domain import Classification, ErrorClass
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = ["SERVICE", "AwsSigner"]

SERVICE = "bedrock"  # the signing name of bedrock-runtime and of the bedrock control plane alike


def _no_credentials(provider_id: str, detail: str) -> ProviderError:
    return ProviderError(provider_id, None, Classification(ErrorClass.AUTH, code="no_credentials", detail=detail))


_Key = tuple[str, str | None, str | None, str | None]


def _key(provider: ProviderConfig) -> _Key:
    """A reload that changes the configured keys must not keep signing with the old ones."""

    def value(secret: Any) -> str | None:
        return None if secret is None else str(secret.get_secret_value())

    return (
        provider.id,
        value(provider.aws_access_key_id),
        value(provider.aws_secret_access_key),
        value(provider.aws_session_token),
    )


class AwsSigner:
    """Per provider (and configured keys): where its credentials come from, the frozen set now in use, and SigV4
    signing with it."""

    def __init__(self) -> None:
        self._sources: dict[_Key, Any] = {}  # botocore Credentials (maybe refreshable)
        self._frozen: dict[_Key, Any] = {}  # botocore ReadOnlyCredentials in use
        self._locks: dict[_Key, asyncio.Lock] = {}

    async def prepare(self, provider: ProviderConfig) -> None:
        """Have current credentials for `provider` (a refresh of chain credentials runs in a thread)."""
        key = _key(provider)
        source = self._sources.get(key)
        if source is not None and not _refresh_due(source):
            self._frozen[key] = source.get_frozen_credentials()  # no I/O when no refresh is due
            return
        async with self._locks.setdefault(key, asyncio.Lock()):
            current: Any = self._sources.get(key)
            if current is None:
                current = await asyncio.to_thread(_resolve, provider)
                self._sources[key] = current
            try:
                self._frozen[key] = await asyncio.to_thread(current.get_frozen_credentials)
            except Exception as exc:  # botocore raises its own errors for a failed refresh (STS, metadata)
                raise _no_credentials(
                    provider.id, f"AWS credentials could not be refreshed: {type(exc).__name__}"
                ) from exc

    def sign(
        self, provider: ProviderConfig, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """`headers` plus `X-Amz-Date`, `Authorization` (and `X-Amz-Security-Token`) for this exact request."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        frozen = self._frozen.get(_key(provider))
        if frozen is None:
            raise _no_credentials(provider.id, "no AWS credentials prepared for this provider")
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(frozen, SERVICE, provider.region).add_auth(request)
        return {str(k): str(v) for k, v in request.headers.items()}


def _refresh_due(source: Any) -> bool:
    refresh_needed = getattr(source, "refresh_needed", None)  # only botocore's RefreshableCredentials have it
    return bool(refresh_needed()) if callable(refresh_needed) else False


def _resolve(provider: ProviderConfig) -> Any:
    """The provider's credential source: its configured keys, else botocore's default chain (blocking)."""
    from botocore.credentials import Credentials
    from botocore.session import get_session

    if provider.aws_access_key_id is not None and provider.aws_secret_access_key is not None:
        token = provider.aws_session_token.get_secret_value() if provider.aws_session_token else None
        return Credentials(
            provider.aws_access_key_id.get_secret_value(), provider.aws_secret_access_key.get_secret_value(), token
        )
    creds = get_session().get_credentials()
    if creds is None:
        raise _no_credentials(
            provider.id,
            "no AWS credentials: set aws_access_key_id/aws_secret_access_key or configure the default chain",
        )
    return creds
