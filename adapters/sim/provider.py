"""One simulated provider on its own port: routes for its wire family, key checks, rate limits, faults that
act before the answer (auth, region, errors, hang, reset, latency), and its own listener, which closes while
a `refused` fault holds so the connection is refused for this provider alone.

A little over 400 lines: one provider server, whose routes and pre-answer faults are one concept.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import math
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from adapters.sim.catalogue import Behaviour, ErrorResponse, FaultSpec, RenderContext, gg_body, resolve_fault
from adapters.sim.chat import BadRequest, ChatCall, WireFormat, build_answer, estimate_tokens
from adapters.sim.config import SIM_AWS_ACCESS_KEY_ID, SimProvider
from adapters.sim.faults import FaultBook, Fired
from adapters.sim.google_token import TokenIssuer
from adapters.sim.ratelimit import RateLimiter, rate_headers
from adapters.sim.respond import WAS_RESET, Turn, hold, pause, reset_connection, send_plain, send_stream
from adapters.sim.stats import Stats
from adapters.sim.wire_anthropic import AnthropicWire
from adapters.sim.wire_bedrock import BedrockWire, base_id, br_error
from adapters.sim.wire_gemini import GeminiWire
from adapters.sim.wire_openai import OpenAIWire
from controlplane.clock import Clock

__all__ = ["ProviderServer", "WIRES", "BASE_PATHS"]

WIRES: dict[str, Callable[[], WireFormat]] = {
    "openai": OpenAIWire,
    "anthropic": AnthropicWire,
    "gemini": GeminiWire,
    "bedrock": BedrockWire,
    "vertex": GeminiWire,  # Vertex's Google publisher; its Anthropic publisher answers with AnthropicWire
}
# What a Turnout ProviderConfig.base_url appends to http://host:port for each family (Bedrock: the runtime and
# the control plane share the simulator's one port, so base_url and catalogue_url are both the root).
BASE_PATHS = {"openai": "/v1", "anthropic": "", "gemini": "/v1beta", "bedrock": "", "vertex": "/v1"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProviderServer:
    """Serves one `SimProvider`."""

    def __init__(
        self, cfg: SimProvider, *, host: str, book: FaultBook, stats: Stats, clock: Clock, stopping: asyncio.Event
    ) -> None:
        self.cfg, self.host = cfg, host
        self.port = cfg.port
        self.wire = WIRES[cfg.family]()
        self.limiter = RateLimiter(cfg.rate_limits, clock)
        # Vertex: the OAuth2 token endpoint for service-account credentials, and the check of its bearer tokens.
        self.tokens = TokenIssuer(clock, cfg.token_lifetime) if cfg.family == "vertex" else None
        self._anthropic_wire = AnthropicWire()
        self._book, self._stats, self._clock, self._stopping = book, stats, clock, stopping
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._starting: asyncio.Task[asyncio.Server] | None = None
        self.app = web.Application(middlewares=[self._count_status])
        self._routes()

    # -- addresses --
    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + BASE_PATHS[self.cfg.family]

    @property
    def listening(self) -> bool:
        return self._server is not None or self._starting is not None

    # -- listener --
    async def start(self) -> None:
        # Short shutdown: held requests are released by `stopping` before cleanup. Handler cancellation: a
        # client that gives up on a hung or stalled request frees its handler (no pile-up in a long demo).
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=1.0, handle_signals=False, handler_cancellation=True
        )
        await self._runner.setup()
        self.start_listening()
        await self.settle()

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        return sock

    def start_listening(self) -> None:
        """Bind and listen now (connections queue in the backlog); the server starts accepting on the next loop turn."""
        if self.listening or self._runner is None:
            return
        sock = self._bind()
        loop = asyncio.get_running_loop()
        self._starting = loop.create_task(loop.create_server(self._runner.server, sock=sock))  # type: ignore[arg-type]

    def stop_listening(self) -> None:
        """Close the listening socket at once: new connections are refused; open ones stay (and get reset)."""
        if self._starting is not None:
            self._starting.add_done_callback(
                lambda t: t.result().close() if not t.cancelled() and t.exception() is None else None
            )
            self._starting = None
        if self._server is not None:
            self._server.close()
            self._server = None

    async def settle(self) -> None:
        if self._starting is not None:
            task, self._starting = self._starting, None
            self._server = await task

    async def close(self) -> None:
        self.stop_listening()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- routes --
    def _routes(self) -> None:
        r = self.app.router
        fam = self.cfg.family
        r.add_get("/health", self._health)
        if fam == "openai":
            for prefix in ("/v1", "", "/openai/v1"):  # the last: Azure's v1 surface
                r.add_post(prefix + "/chat/completions", self._chat)
                r.add_get(prefix + "/models", self._models)
                r.add_get(prefix + "/models/{model:.+}", self._model)
            r.add_post("/openai/deployments/{model}/chat/completions", self._chat)  # Azure-style deployment path
            r.add_get("/user/balance", self._balance)
            r.add_get("/api/tags", self._ollama_tags)
            r.add_get("/api/version", self._ollama_version)
        elif fam == "anthropic":
            r.add_post("/v1/messages", self._messages)
            r.add_post("/v1/messages/count_tokens", self._count_tokens)
            r.add_get("/v1/models", self._models)
            r.add_get("/v1/models/{model}", self._model)
        elif fam == "vertex":
            r.add_post("/token", self._token)
            r.add_post("/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{name}", self._vertex)
        elif fam == "bedrock":
            r.add_post("/model/{model}/converse", self._converse)
            r.add_post("/model/{model}/converse-stream", self._converse_stream)
            r.add_post("/model/{model}/count-tokens", self._bedrock_count)
            r.add_get("/foundation-models", self._models)
            r.add_get("/inference-profiles", self._profiles)
            r.add_get("/foundation-model-availability/{model}", self._availability)
        else:
            r.add_get("/v1beta/models", self._models)
            r.add_route("*", "/v1beta/models/{name}", self._gemini)

    @web.middleware
    async def _count_status(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            self._stats.status(self.cfg.id, exc.status)
            raise
        self._stats.status(self.cfg.id, "reset" if resp.get(WAS_RESET) else resp.status)
        return resp

    # -- answers shared by every route --
    def _respond(self, er: ErrorResponse, extra: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=er.status, body=er.body, headers={**er.headers, **(extra or {})}, content_type=er.content_type
        )

    def _fault_answer(self, alias: str, model: str, params: dict[str, Any] | None = None) -> ErrorResponse:
        spec = resolve_fault(alias, self.cfg.family, self.cfg.effective_flavor)
        assert spec.render is not None
        return spec.render(RenderContext(model, self._clock.wall(), self.cfg.family, params or {}))

    async def _sigv4_refusal(self, request: web.Request) -> web.Response | None:
        """Bedrock: the SigV4 signature checked by botocore's signer; AWS's 403 when it does not hold."""
        if self.cfg.api_key is None:
            return None
        from adapters.sim.sigv4 import verify_sigv4

        url = f"http://{request.host}{request.raw_path}"
        region = None if self.cfg.region == "default" else self.cfg.region
        problem = verify_sigv4(
            request.method,
            url,
            request.headers,
            await request.read(),
            {SIM_AWS_ACCESS_KEY_ID: self.cfg.api_key},
            region=region,
        )
        return None if problem is None else self._respond(br_error(403, *problem))

    def _auth_ok(self, request: web.Request) -> bool:
        want = self.cfg.api_key
        if want is None:
            return True
        h = request.headers
        auth = h.get("Authorization", "")
        offered = [
            auth[7:] if auth.lower().startswith("bearer ") else "",
            h.get("api-key", ""),
            h.get("x-api-key", ""),
            h.get("x-goog-api-key", ""),
            request.query.get("key", ""),
        ]
        return any(o and hmac.compare_digest(o.encode(), want.encode()) for o in offered)

    async def _preflight(
        self, request: web.Request, model: str | None, *, inference: bool, stream: bool
    ) -> web.StreamResponse | Fired:
        """Checks and faults that act before any answer; returns the response to send, or what fired."""
        if self._book.refusing(self.cfg.id):
            return reset_connection(request)  # a kept-alive connection from before the listener closed
        if self.cfg.family == "bedrock":
            refused = await self._sigv4_refusal(request)
            if refused is not None:
                return refused
        elif self.tokens is not None and self.cfg.api_key is not None:
            if not self.tokens.valid(request.headers.get("Authorization", "")):
                return self._respond(self._fault_answer("auth", model or ""))
        elif not self._auth_ok(request):
            return self._respond(self._fault_answer("auth", model or ""))
        if model is not None and self.cfg.model(model) is None:
            return self._respond(self._fault_answer("model_gone", model))
        fired = self._book.fire(self.cfg.id, model, inference=inference, stream=stream)
        for rule in fired.rules:
            self._stats.fault(self.cfg.id, rule.spec.id)
        latency = (self.cfg.latency if inference else 0.0) + sum(
            float(m.param("seconds", 0)) for m in fired.modifier(Behaviour.LATENCY)
        )
        if await pause(latency, self._stopping):
            return reset_connection(request)
        t = fired.terminal
        if t is None:
            return fired
        b = t.spec.behaviour
        if (b is Behaviour.ERROR or b is Behaviour.HEALTH_LOADING) and t.spec.render is not None:
            return self._respond(
                t.spec.render(RenderContext(model or "", self._clock.wall(), self.cfg.family, t.params))
            )
        if b is Behaviour.RESET and not stream:
            return reset_connection(request)
        if b is Behaviour.HANG:
            seconds = t.param("seconds")
            if await hold(t, self._stopping, None if seconds is None else float(seconds)):
                return reset_connection(request)
            fired.terminal = None  # headers were held; now answer normally
        return fired

    def _capacity(self, fired: Fired) -> dict[str, str]:
        headers = rate_headers(self.cfg.family, self.cfg.effective_flavor, self.limiter.snapshot(), self._clock)
        for m in fired.modifier(Behaviour.DRAIN):
            steps = max(1, int(m.param("steps", 4)))
            limit = int(headers.get("x-ratelimit-limit-tokens", self.cfg.rate_limits.tokens))
            left = limit * max(0, steps - m.hits) // steps
            headers |= {
                "x-ratelimit-limit-tokens": str(limit),
                "x-ratelimit-remaining-tokens": str(left),
                "x-ratelimit-reset-tokens": "6m0s",
            }
        if fired.modifier(Behaviour.NEG_HEADERS):
            headers |= {
                "x-ratelimit-limit-tokens": "-1",
                "x-ratelimit-remaining-tokens": "-1",
                "x-ratelimit-reset-tokens": "0",
            }
        return headers

    def _rate_limited(self, model: str) -> web.Response:
        """The family's 429 when the simulated budget is spent, with the real remaining/reset headers."""
        er = self._fault_answer("rate_limited", model)
        snap = self.limiter.snapshot()
        headers = dict(er.headers) | rate_headers(self.cfg.family, self.cfg.effective_flavor, snap, self._clock)
        if self.cfg.family not in ("gemini", "bedrock", "vertex"):  # none of them sends retry-after
            headers["retry-after"] = str(max(1, math.ceil(snap.reset_in_s)))
        return web.Response(status=429, body=er.body, headers=headers, content_type="application/json")

    async def _read_call(
        self,
        request: web.Request,
        endpoint: str,
        path_model: str | None = None,
        *,
        count_only: bool = False,
        wire: WireFormat | None = None,
    ) -> ChatCall | web.Response:
        wire = wire or self.wire
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
            call = wire.parse(body, path_model, count_only=count_only)
        except ValueError as exc:
            self._stats.count(self.cfg.id, path_model, endpoint)
            msg, param = (
                (exc.message, exc.param)
                if isinstance(exc, BadRequest)
                else (f"could not parse the JSON body: {exc}", None)
            )
            return self._respond(wire.bad_request(msg, param))
        self._stats.count(self.cfg.id, call.model, endpoint)
        return replace(call, rid=f"sim-{self.port}-{next(self._ids)}", created=int(self._clock.wall().timestamp()))

    async def _inference(
        self,
        request: web.Request,
        endpoint: str,
        path_model: str | None = None,
        stream: bool | None = None,
        wire: WireFormat | None = None,
    ) -> web.StreamResponse:
        wire = wire or self.wire
        call = await self._read_call(request, endpoint, path_model, wire=wire)
        if isinstance(call, web.Response):
            return call
        if stream is not None:
            call = replace(call, stream=stream)
        pre = await self._preflight(request, call.model, inference=True, stream=call.stream)
        if isinstance(pre, web.StreamResponse):
            return pre
        model = self.cfg.model(call.model)
        assert model is not None
        text = (model.answer or "Hello from {provider}/{model}").format(provider=self.cfg.id, model=call.model)
        answer = build_answer(call, text)
        if not self.limiter.try_consume(answer.total_tokens):
            return self._rate_limited(call.model)
        turn = Turn(
            request,
            wire,
            call,
            answer,
            self._capacity(pre),
            pre,
            self.cfg.effective_flavor,
            self.cfg.ttft,
            self.cfg.token_rate,
            self._stopping,
        )
        return await (send_stream(turn) if call.stream else send_plain(turn))

    # -- handlers --
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        deployment = request.match_info.get("model")
        if deployment is not None and "api-version" not in request.query:  # Azure's deployments surface needs it
            body = {"error": {"code": "404", "message": "Resource not found"}}
            return self._respond(ErrorResponse(404, json.dumps(body).encode()))
        return await self._inference(request, "chat_completions", deployment)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, "messages")

    async def _count_tokens(
        self, request: web.Request, path_model: str | None = None, wire: WireFormat | None = None
    ) -> web.StreamResponse:
        wire = wire or self.wire
        call = await self._read_call(request, "count_tokens", path_model, count_only=True, wire=wire)
        if isinstance(call, web.Response):
            return call
        pre = await self._preflight(request, call.model, inference=False, stream=False)
        if isinstance(pre, web.StreamResponse):
            return pre
        n = estimate_tokens(call.prompt_text)
        key = {"gemini": "totalTokens", "bedrock": "inputTokens"}.get(wire.family, "input_tokens")
        return web.json_response({key: n})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        """Google's OAuth2 token endpoint (JWT-bearer grant of a service account)."""
        assert self.tokens is not None
        self._stats.count(self.cfg.id, None, "token")
        form = {k: str(v) for k, v in (await request.post()).items()}
        status, body = self.tokens.issue(form, f"{self.root_url}/token")
        return web.json_response(body, status=status)

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        """`…/publishers/{google|anthropic}/models/{model}:{method}`."""
        name, _, method = request.match_info["name"].partition(":")
        owner = request.match_info["publisher"]
        if request.match_info["project"] != self.cfg.project:
            er = ErrorResponse(
                403,
                gg_body(
                    403, "PERMISSION_DENIED", f"Permission denied on resource project {request.match_info['project']}."
                ),
            )
            return self._respond(er)
        if owner == "anthropic":
            wire = self._anthropic_wire
            if method in ("rawPredict", "streamRawPredict") and name == "count-tokens":
                return await self._count_tokens(request, None, wire)
            if method == "rawPredict":
                return await self._inference(request, "raw_predict", name, stream=None, wire=wire)
            if method == "streamRawPredict":
                return await self._inference(request, "stream_raw_predict", name, stream=True, wire=wire)
        elif owner == "google":
            if method == "generateContent":
                return await self._inference(request, "generate_content", name, stream=False)
            if method == "streamGenerateContent":
                return await self._inference(request, "stream_generate_content", name, stream=True)
            if method == "countTokens":
                return await self._count_tokens(request, name)
        er = ErrorResponse(404, gg_body(404, "NOT_FOUND", f"Publisher model {owner}/{name}:{method} not found."))
        return self._respond(er)

    async def _converse(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, "converse", request.match_info["model"], stream=False)

    async def _converse_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, "converse_stream", request.match_info["model"], stream=True)

    async def _bedrock_count(self, request: web.Request) -> web.StreamResponse:
        return await self._count_tokens(request, request.match_info["model"])

    async def _profiles(self, request: web.Request) -> web.StreamResponse:
        self._stats.count(self.cfg.id, None, "inference_profiles")
        pre = await self._preflight(request, None, inference=False, stream=False)
        if isinstance(pre, web.StreamResponse):
            return pre
        assert isinstance(self.wire, BedrockWire)
        return web.json_response(self.wire.profiles_page(self._listed(), request.query, self.cfg.page_size))

    async def _availability(self, request: web.Request) -> web.StreamResponse:
        """Bedrock's per-model availability: NOT_AVAILABLE in this region while a region block (BR-400R) holds,
        NOT_AUTHORIZED once the model left the account (BR-400G and other drops)."""
        name = request.match_info["model"]
        self._stats.count(self.cfg.id, name, "model_availability")
        pre = await self._preflight(request, None, inference=False, stream=False)
        if isinstance(pre, web.StreamResponse):
            return pre
        if not any(base_id(m.name) == name for m in self.cfg.models):
            return self._respond(br_error(404, "ResourceNotFoundException", f"Model {name} not found."))
        blocked = any(r.spec.id == "BR-400R" for r in self._book.rules(self.cfg.id))
        usable = any(base_id(m[0]) == name for m in self._listed())
        return web.json_response(
            {
                "modelId": name,
                "agreementAvailability": {"status": "AVAILABLE"},
                "authorizationStatus": "AUTHORIZED" if usable else "NOT_AUTHORIZED",
                "entitlementAvailability": "AVAILABLE" if usable else "NOT_AVAILABLE",
                "regionAvailability": "NOT_AVAILABLE" if blocked else "AVAILABLE",
            }
        )

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        model, _, method = name.partition(":")
        if request.method == "GET" and not method:
            return await self._model(request, model)
        if request.method == "POST" and method == "generateContent":
            return await self._inference(request, "generate_content", model, stream=False)
        if request.method == "POST" and method == "streamGenerateContent":
            return await self._inference(request, "stream_generate_content", model, stream=True)
        if request.method == "POST" and method == "countTokens":
            return await self._count_tokens(request, model)
        return self._respond(
            ErrorResponse(
                404,
                json.dumps(
                    {
                        "error": {
                            "code": 404,
                            "message": f"Method not found: {method or request.method}",
                            "status": "NOT_FOUND",
                        }
                    }
                ).encode(),
            )
        )

    def _listed(self) -> list[tuple[str, int, str]]:
        dropped, everything = self._book.dropped_models(self.cfg.id)
        if everything:
            return []
        return [(m.name, m.context_window, m.display_name or m.name) for m in self.cfg.models if m.name not in dropped]

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self._stats.count(self.cfg.id, None, "models")
        pre = await self._preflight(request, None, inference=False, stream=False)
        if isinstance(pre, web.StreamResponse):
            return pre
        page_size = self.cfg.page_size
        if self.cfg.family == "anthropic" and self._book.passive(self.cfg.id, Behaviour.CATALOGUE):
            page_size = 1  # CAT-1: page 1 comes with has_more: true
        body = self.wire.models_page(self._listed(), request.query, page_size)
        return web.json_response(body, headers=self._capacity(pre))

    async def _model(self, request: web.Request, name: str | None = None) -> web.StreamResponse:
        name = name or request.match_info["model"]
        self._stats.count(self.cfg.id, name, "model")
        pre = await self._preflight(request, None, inference=False, stream=False)
        if isinstance(pre, web.StreamResponse):
            return pre
        row = next((m for m in self._listed() if m[0] == name), None)
        if row is None:
            return self._respond(self._fault_answer("model_gone", name))
        return web.json_response(self.wire.model_item(*row), headers=self._capacity(pre))

    async def _health(self, request: web.Request) -> web.StreamResponse:
        self._stats.count(self.cfg.id, None, "health")
        pre = await self._preflight_open(request)
        if isinstance(pre, web.StreamResponse):
            return pre
        if self.cfg.effective_flavor == "llamacpp":
            return web.json_response({"status": "ok"})
        return web.Response(status=200)

    async def _preflight_open(self, request: web.Request) -> web.StreamResponse | Fired:
        """Like `_preflight` but without a key: health and version endpoints answer only to loading and transport faults."""
        if self._book.refusing(self.cfg.id):
            return reset_connection(request)
        fired = self._book.fire(self.cfg.id, None, inference=False, stream=False, accept=_open_endpoint_fault)
        t = fired.terminal
        if t is None:
            return fired
        self._stats.fault(self.cfg.id, t.spec.id)
        if t.spec.behaviour is Behaviour.RESET:
            return reset_connection(request)
        if t.spec.behaviour is Behaviour.HANG:
            seconds = t.param("seconds")
            if await hold(t, self._stopping, None if seconds is None else float(seconds)):
                return reset_connection(request)
            return fired
        assert t.spec.render is not None
        return self._respond(t.spec.render(RenderContext("", self._clock.wall(), self.cfg.family, t.params)))

    async def _balance(self, request: web.Request) -> web.StreamResponse:
        self._stats.count(self.cfg.id, None, "balance")
        pre = await self._preflight(request, None, inference=False, stream=False)
        if isinstance(pre, web.StreamResponse):
            return pre
        broke = any(r.spec.id in ("DS-402", "OA-429Q") for r in self._book.rules(self.cfg.id))
        amount = "0.00" if broke else "10.00"
        info = {"currency": "USD", "total_balance": amount, "granted_balance": "0.00", "topped_up_balance": amount}
        return web.json_response({"is_available": not broke, "balance_infos": [info]})

    async def _ollama_tags(self, request: web.Request) -> web.StreamResponse:
        self._stats.count(self.cfg.id, None, "tags")
        pre = await self._preflight_open(request)
        if isinstance(pre, web.StreamResponse):
            return pre
        return web.json_response({"models": [{"name": m[0], "model": m[0], "size": 0} for m in self._listed()]})

    async def _ollama_version(self, request: web.Request) -> web.StreamResponse:
        pre = await self._preflight_open(request)
        return pre if isinstance(pre, web.StreamResponse) else web.json_response({"version": "0.0.0-sim"})


def _open_endpoint_fault(spec: FaultSpec) -> bool:
    return spec.behaviour in (Behaviour.HEALTH_LOADING, Behaviour.RESET, Behaviour.HANG)
