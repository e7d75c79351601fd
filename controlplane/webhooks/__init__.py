"""Failover webhooks: endpoints, Standard Webhooks signing, SSRF-guarded URLs, the durable outbox and the dispatcher."""

from __future__ import annotations

from controlplane.webhooks.dispatcher import RETRY_SCHEDULE, Dispatcher, retry_delay
from controlplane.webhooks.outbox import Outbox, ensure_schema, event_body, install_outbox
from controlplane.webhooks.rows import WebhookDelivery, WebhookEndpoint
from controlplane.webhooks.service import append_and_publish, start_dispatcher
from controlplane.webhooks.signing import generate_secret, sign, signed_headers, verify
from controlplane.webhooks.urls import GuardedResolver, WebhookUrlError, check_resolved, validate_url

__all__ = [
    "RETRY_SCHEDULE",
    "Dispatcher",
    "GuardedResolver",
    "Outbox",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookUrlError",
    "append_and_publish",
    "check_resolved",
    "ensure_schema",
    "event_body",
    "generate_secret",
    "install_outbox",
    "retry_delay",
    "sign",
    "signed_headers",
    "start_dispatcher",
    "validate_url",
    "verify",
]
