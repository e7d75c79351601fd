"""The status API (aiohttp, JSON): table with long-poll, routes, targets, providers, events, uptime,
overrides, webhooks management, a Statuspage-shaped summary and the OpenAPI document."""

from __future__ import annotations

from controlplane.api.routes import install, openapi_document, operations

__all__ = ["install", "openapi_document", "operations"]
