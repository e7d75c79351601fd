"""The AWS Bedrock family: Converse / ConverseStream on `bedrock-runtime`, signed with SigV4 (adapters/aws_auth.py).

Requests go to `POST {base}/model/{modelId}/converse` (or `/converse-stream`) with the model id percent-encoded
in the path (`:` becomes `%3A`), and that encoded path is what gets signed. Errors are named by exception in the
`x-amzn-ErrorType` header (the body is only `{"message": …}`; provider-semantics.md §2.4). The catalogue lives on
the control plane (`bedrock.{region}…`): `GET /foundation-models` lists base model ids, `GET /inference-profiles`
the cross-region profile ids (`eu.anthropic.…`), and `GET /foundation-model-availability/{id}` says whether this
account may use a model from this region, which is what a region block's recheck needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson

from adapters import calls
from adapters.aws_auth import AwsSigner
from adapters.base import ModelListing, UpstreamRequest
from adapters.bedrock_converse import ConverseStream, from_converse, to_converse_request
from adapters.wire import bedrock as wire
from adapters.wire.common import ErrorInfo, json_or_none, obj
from adapters.wire.status import classify_answer, is_context_message, make, status_fallback
from controlplane.domain import Classification, ErrorClass, Headroom, Scope
from controlplane.errors import ProviderError

if TYPE_CHECKING:
    from controlplane.config import ProviderConfig

__all__ = ["BedrockAdapter", "classify_bedrock", "classify_exception", "base_model_id", "model_path"]

_NAME = "bedrock"


def base_model_id(model: str) -> str:
    """The foundation model behind a cross-region inference profile (`eu.anthropic.x` → `anthropic.x`)."""
    return next((model[len(p) :] for p in wire.GEO_PREFIXES if model.startswith(p)), model)


def model_path(model: str) -> str:
    """The model id as one path segment: every reserved character percent-encoded (`:` → `%3A`, `/` in ARNs)."""
    return quote(model, safe="")


def _exception_name(headers: Mapping[str, str], doc: Any) -> str:
    """`ThrottlingException` from `x-amzn-ErrorType: ThrottlingException:http://…`, else the body's `__type`."""
    raw = headers.get("x-amzn-errortype") or ""
    if not raw and isinstance(doc, dict):
        raw = str(doc.get("__type") or doc.get("code") or "")
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _classify(status: int | None, name: str, message: str, headers: Mapping[str, str], now: datetime) -> Classification:
    info = ErrorInfo(json=True, has_error=True, type=name or None, message=message)
    key = name.lower()
    msg = message.lower()

    def done(cls: ErrorClass, code: str | None, scope: Scope | None = None, context: bool = False) -> Classification:
        return make(
            cls, status=status, info=info, headers=headers, now=now, scope=scope, code=code, context_exceeded=context
        )

    if key in wire.AUTH_EXCEPTIONS:
        return done(ErrorClass.AUTH, name)
    if key == "validationexception":
        if any(t in msg for t in wire.REGION_TEXT):
            return done(ErrorClass.REGION_BLOCKED, name)
        if any(t in msg for t in wire.GONE_TEXT):
            return done(ErrorClass.MODEL_GONE, name, Scope.TARGET)
        if is_context_message(message):
            return done(ErrorClass.CLIENT_ERROR, "context_length_exceeded", context=True)
        return done(ErrorClass.CLIENT_ERROR, name)
    if key == "accessdeniedexception":
        # "You don't have access to the model with the specified model ID.": this model, not the whole key
        scope = Scope.TARGET if "model" in msg else None
        return done(ErrorClass.AUTH, name, scope)
    if key == "resourcenotfoundexception":
        return done(ErrorClass.MODEL_GONE, name, Scope.TARGET)
    if (cls := wire.EXCEPTIONS.get(key)) is not None:
        return done(cls, name)
    if status is None:  # an exception event we do not know: the stream failed on the provider's side
        return done(ErrorClass.SERVER_ERROR, name or "stream_exception")
    fallback, scope = status_fallback(status, info if name or message else ErrorInfo.from_body(b""))
    return done(fallback, name or f"http_{status}", scope)


def classify_exception(name: str, message: str) -> Classification:
    """A ConverseStream exception event (`throttlingException`, …): the class by its name."""
    return _classify(None, name, message, {}, datetime.now(UTC))


def classify_bedrock(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> Classification:
    """Error class, scope and retry hints for one Bedrock answer (2xx included)."""
    h = {k.lower(): v for k, v in headers.items()}
    now = now or datetime.now(UTC)
    if 200 <= status < 300:
        return classify_answer(status, h, body, now, lambda s, i, hh, n: _classify(s, i.type or "", i.message, hh, n))
    doc = json_or_none(body)
    name = _exception_name(h, doc)
    message = str(obj(doc).get("message") or obj(doc).get("Message") or "")
    if not name and not message:
        info = ErrorInfo.from_body(body)
        cls, scope = status_fallback(status, info)
        return make(cls, status=status, info=info, headers=h, now=now, scope=scope, code=f"http_{status}")
    return _classify(status, name, message, h, now)


def _listing_error(got: calls.Fetched, what: str) -> ProviderError:
    c = classify_bedrock(got.status, got.headers, got.body)
    if c.ok:
        c = Classification(
            ErrorClass.BAD_RESPONSE, status=got.status, code="bad_listing", detail=f"{what} without its list"
        )
    return ProviderError(_NAME, None, c)


class BedrockAdapter(calls.StreamedProbe):
    """The Adapter for Bedrock's Converse API (implements adapters.base.Credentialed)."""

    name = _NAME

    def __init__(self) -> None:
        self._signer = AwsSigner()

    async def prepare(self, provider: ProviderConfig) -> None:
        await self._signer.prepare(provider)

    def _signed(
        self, provider: ProviderConfig, method: str, url: str, body: bytes | None, accept: str
    ) -> UpstreamRequest:
        headers = {"accept": accept, **provider.headers}
        if body is not None:
            headers["content-type"] = "application/json"
        return UpstreamRequest(method, url, self._signer.sign(provider, method, url, headers, body), body)

    def build_request(
        self, provider: ProviderConfig, model: str, body: Mapping[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        verb = "converse-stream" if stream else "converse"
        url = f"{provider.base_url}/model/{model_path(model)}/{verb}"
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        return self._signed(provider, "POST", url, orjson.dumps(to_converse_request(body)), accept)

    def count_request(self, provider: ProviderConfig, model: str, prompt: str) -> UpstreamRequest:
        """`POST /model/{id}/count-tokens` (free: nothing is generated) for the probe prompt."""
        converse = to_converse_request({"messages": [{"role": "user", "content": prompt}]})
        body = {"input": {"converse": {"messages": converse["messages"]}}}
        url = f"{provider.base_url}/model/{model_path(model)}/count-tokens"
        return self._signed(provider, "POST", url, orjson.dumps(body), "application/json")

    def parse_response(self, body: bytes, *, model: str) -> dict[str, Any]:
        return from_converse(json_or_none(body), model)

    def stream_translator(self, *, model: str) -> ConverseStream:
        return ConverseStream(model, classify_exception)

    def classify(
        self, status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
    ) -> Classification:
        return classify_bedrock(status, headers, body, now=now)

    def headroom(self, headers: Mapping[str, str], now: datetime) -> Headroom | None:
        return None  # Bedrock sends no rate-limit headers (§3)

    def _catalogue_base(self, provider: ProviderConfig) -> str:
        return provider.catalogue_url or f"https://bedrock.{provider.region}.amazonaws.com"

    async def _get(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, path: str, timeout: float
    ) -> calls.Fetched:
        req = self._signed(provider, "GET", self._catalogue_base(provider) + path, None, "application/json")
        return await calls.fetch(session, req, timeout=timeout, provider_id=provider.id)

    async def list_models(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, *, timeout: float
    ) -> ModelListing:
        """Base ids from /foundation-models, profile ids from /inference-profiles (paged), and, for every
        configured model that is listed, whether this account may use it from this region."""
        await self.prepare(provider)
        got = await self._get(session, provider, "/foundation-models", timeout)
        doc = json_or_none(got.body)
        summaries = obj(doc).get("modelSummaries")
        if got.status != 200 or not isinstance(summaries, list):
            raise _listing_error(got, "foundation model list")
        models = [str(m["modelId"]) for m in summaries if isinstance(m, dict) and isinstance(m.get("modelId"), str)]
        token: str | None = None
        for _ in range(50):  # a bound, in case the service keeps paging
            path = "/inference-profiles?maxResults=1000" + (f"&nextToken={quote(token, safe='')}" if token else "")
            got = await self._get(session, provider, path, timeout)
            doc = json_or_none(got.body)
            profiles = obj(doc).get("inferenceProfileSummaries")
            if got.status != 200 or not isinstance(profiles, list):
                raise _listing_error(got, "inference profile list")
            models.extend(
                str(p["inferenceProfileId"])
                for p in profiles
                if isinstance(p, dict) and isinstance(p.get("inferenceProfileId"), str)
            )
            token = obj(doc).get("nextToken") if isinstance(obj(doc).get("nextToken"), str) else None
            if not token:
                break
        listed = set(models)
        unavailable: dict[str, Classification] = {}
        for m in provider.models:
            if m.name in listed:
                verdict = await self.availability(session, provider, m.name, timeout=timeout)
                if not verdict.ok:
                    unavailable[m.name] = verdict
        return ModelListing(models, None, unavailable)

    async def availability(
        self, session: aiohttp.ClientSession, provider: ProviderConfig, model: str, *, timeout: float
    ) -> Classification:
        """`GET /foundation-model-availability/{base id}`: ok, region_blocked (not offered in this region) or
        model_gone (this account is not authorised or entitled any more). Raises ProviderError for failed calls."""
        got = await self._get(
            session, provider, f"/foundation-model-availability/{model_path(base_model_id(model))}", timeout
        )
        doc = json_or_none(got.body)
        if got.status != 200 or not isinstance(doc, dict):
            raise _listing_error(got, "model availability")
        if str(doc.get("regionAvailability", "AVAILABLE")).upper() == "NOT_AVAILABLE":
            return Classification(
                ErrorClass.REGION_BLOCKED,
                scope=Scope.EGRESS,
                status=200,
                code="region_not_available",
                detail=f"{model} is not available in {provider.region}",
            )
        authorised = str(doc.get("authorizationStatus", "AUTHORIZED")).upper() != "NOT_AUTHORIZED"
        entitled = str(doc.get("entitlementAvailability", "AVAILABLE")).upper() != "NOT_AVAILABLE"
        if not (authorised and entitled):
            return Classification(
                ErrorClass.MODEL_GONE,
                scope=Scope.TARGET,
                status=200,
                code="not_authorized",
                detail=f"this account may no longer use {model}",
            )
        return Classification(ErrorClass.OK, status=200)
