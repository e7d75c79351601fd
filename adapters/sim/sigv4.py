"""The simulator's check of AWS SigV4 signatures, by botocore's own signer (the `turnout[aws]` extra).

The canonical request is rebuilt from the request exactly as received (its raw, still percent-encoded path;
the headers it says it signed), signed again with the secret of the access key it names, and compared in
constant time. A signature older or newer than 15 minutes is refused, as AWS does.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = ["verify_sigv4", "SIGNATURE_SKEW_S"]

SIGNATURE_SKEW_S = 15 * 60
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


def verify_sigv4(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    *,
    region: str | None,
    now: datetime | None = None,
) -> tuple[str, str] | None:
    """None when the request is signed by a known key (for `region`, when given); else (exception name, message) as AWS
    answers: `MissingAuthenticationTokenException`, `IncompleteSignatureException`,
    `UnrecognizedClientException`, `InvalidSignatureException`. `url` has the raw path and query."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization", "")
    if not auth:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    m = _AUTH.match(auth.strip())
    amz_date = lower.get("x-amz-date", "")
    if m is None or not amz_date:
        return "IncompleteSignatureException", "Authorization header requires Credential, SignedHeaders and Signature."
    secret = secrets.get(m["akid"])
    if secret is None:
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "IncompleteSignatureException", "X-Amz-Date is not a valid timestamp."
    if abs(((now or datetime.now(UTC)) - signed_at).total_seconds()) > SIGNATURE_SKEW_S:
        return "InvalidSignatureException", "Signature expired: the request time is too far from the server time."
    if (region is not None and m["region"] != region) or m["service"] != "bedrock":
        return (
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service ({region}, bedrock).",
        )
    signed = m["signed"].split(";")
    request = AWSRequest(
        method=method, url=url, data=body, headers={h: lower.get(h, "") for h in signed if h != "host"}
    )
    request.headers["host"] = lower.get("host", "")
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(m["akid"], secret, lower.get("x-amz-security-token")), "bedrock", m["region"])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m["sig"]):
        return (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None
