from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from controlplane.webhooks.signing import SECRET_PREFIX, generate_secret, sign, signed_headers, verify


def test_secrets_are_whsec_base64_of_24_bytes_and_unique() -> None:
    a, b = generate_secret(), generate_secret()
    assert a.startswith(SECRET_PREFIX) and a != b
    assert len(base64.b64decode(a.removeprefix(SECRET_PREFIX))) == 24


def test_standardwebhooks_package_verifies_our_signature() -> None:
    secret, body, ts = generate_secret(), b'{"type":"target.withdrawn","data":{}}', int(time.time())
    headers = signed_headers(secret, "msg_1", ts, body)
    assert Webhook(secret).verify(body, headers) == {"type": "target.withdrawn", "data": {}}
    assert headers["webhook-signature"].startswith("v1,")


def test_tampered_body_or_wrong_secret_fails() -> None:
    secret, ts = generate_secret(), int(time.time())
    headers = signed_headers(secret, "msg_1", ts, b"{}")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"x":1}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(b"{}", headers)


def test_verify_accepts_any_of_several_signatures() -> None:
    secret = generate_secret()
    good = sign(secret, "msg_1", 10, b"{}")
    assert verify(secret, "msg_1", 10, b"{}", f"v1,AAAA {good}")
    assert not verify(secret, "msg_2", 10, b"{}", good)
