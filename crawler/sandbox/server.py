"""The sandbox SWR server: aiohttp on loopback, the tag-details API, lists and IAM.

One :class:`SandboxServer` per application holds the catalogue, the accounts,
the fault state and the :class:`Stats`. Routes::

    GET  /v2/manage/namespaces/{namespace}/repos/{repository}/tags/{tag}   tag details
    GET  /v2/manage/namespaces/{namespace}/repos/{repository}/tags         list (v2)
    GET  /v3/manage/namespaces/{namespace}/repos/{repository}/tags         list (v3)
    GET  /v2/manage/namespaces                                             namespaces
    GET  /v2/manage/repos                                                  repositories (v2)
    GET  /v3/manage/repos                                                  repositories (v3)
    POST /v3/auth/tokens                                                   IAM password login

Everything else is the gateway's 404 ``APIG.0101``. The repository segment
uses ``$`` for ``/`` (``%24`` reaches the handler as ``$`` too). Order of
checks for the tag-details route: latency, rate limit (429 ``APIG.0308``),
authentication (401), the target's script or a random fault, then the
catalogue (200, 404, or 400 for a name that breaks the rules). The list
routes get latency, rate limit and authentication only.

The handlers stay lean for the benchmark: bodies are built once and kept in
the catalogue's LRU, static bodies are pre-serialised, nothing is logged.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from crawler.sandbox import lists
from crawler.sandbox.auth import (
    TOKEN_DENIED,
    Authenticator,
    Denied,
    SignedRequest,
    check_signature,
)
from crawler.sandbox.catalogue import Catalogue, valid_namespace, valid_repository, valid_tag
from crawler.sandbox.faults import (
    ERROR_BODIES,
    Action,
    FaultConfig,
    FaultInjector,
    gateway_error,
    throttled_error,
)

DEFAULT_TOKEN = "sandbox-token"  # noqa: S105  # the sandbox's well-known demo token
CONTENT_TYPE = "application/json;charset=utf-8"
TAG_ROUTE = "/v2/manage/namespaces/{namespace}/repos/{repository}/tags/{tag}"


@dataclass(frozen=True)
class SandboxConfig:
    """Everything a sandbox serves and how it misbehaves."""

    #: Seed of the catalogue (the faults have their own, in ``faults.seed``).
    seed: int = 0
    #: Catalogue size: namespaces x repositories each x tags each.
    namespaces: int = 3
    repos_per_namespace: int = 10
    tags_per_repo: int = 10
    #: Tags of the r-th repository of each namespace: ``tag_counts[r % len]`` (overrides
    #: ``tags_per_repo``; 0 = an empty repository).
    tag_counts: tuple[int, ...] = ()
    #: How far the catalogue has aged: tags added, deleted, re-pushed (see ``Catalogue``).
    generation: int = 0
    #: Namespaces without any repository, after the others.
    empty_namespaces: int = 0
    #: False: no tag lacks a documented field (by default about 4% lack ``updated``,
    #: which list mode answers with a ShowRepoTag each).
    absent_fields: bool = True
    #: False: the v3 tag list answers 404 ``APIG.0101``, as in a region that has
    #: not published it (clients fall back to v2).
    v3_tags: bool = True
    #: Some tags report size 0 or 2^63-1 (for tests of extremes; off = realistic sizes).
    extreme_sizes: bool = False
    #: Accepted static ``X-Auth-Token`` values.
    tokens: frozenset[str] = frozenset({DEFAULT_TOKEN})
    #: AK -> SK accepted for SDK-HMAC-SHA256 signatures.
    credentials: Mapping[str, str] = field(default_factory=dict)
    #: (domain/account name, user name, password) accepted by IAM password login.
    iam_users: Collection[tuple[str, str, str]] = ()
    #: Lifetime of IAM-issued tokens, seconds.
    token_ttl: float = 86400.0
    #: False: every request is let in without credentials.
    require_auth: bool = True
    #: Fault injection (rates, scripts, latency, rate limit).
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: How far X-Sdk-Date may be from the server's clock, seconds.
    max_clock_skew: float = 900.0
    #: Tag-details answers kept built (an LRU).
    cache_size: int = 16384
    #: Count requests per target in ``Stats.per_target`` (a benchmark over
    #: millions of targets may turn it off to save the memory).
    track_targets: bool = True


@dataclass
class Stats:
    """What the sandbox saw. Mutated on the server's event loop only."""

    #: SWR API requests: tag details + lists (IAM logins are counted apart).
    total_requests: int = 0
    tag_requests: int = 0
    list_requests: int = 0
    iam_logins: int = 0
    #: Tag-details requests per target key ``namespace/repository:tag``.
    per_target: Counter[str] = field(default_factory=Counter)
    #: Answers per HTTP status (all routes, IAM included).
    per_status: Counter[int] = field(default_factory=Counter)
    #: 429 answers (rate limit and injected).
    throttled: int = 0
    #: Connections reset instead of answering.
    resets: int = 0
    #: Tag-details requests being handled now, and the most ever at once.
    in_flight: int = 0
    peak_in_flight: int = 0
    #: ``time.time()`` when the first SWR API request arrived (for time-to-first-request).
    first_request_at: float | None = None

    def arrived(self) -> None:
        """One more SWR API request."""
        self.total_requests += 1
        if self.first_request_at is None:
            self.first_request_at = time.time()

    def requests_for(self, namespace: str, repository: str, tag: str) -> int:
        """Tag-details requests made for one target."""
        return self.per_target[f"{namespace}/{repository}:{tag}"]

    def reset(self) -> None:
        """Forget the counts; the peak restarts from what is in flight now."""
        self.total_requests = self.tag_requests = self.list_requests = self.iam_logins = 0
        self.throttled = self.resets = 0
        self.first_request_at = None
        self.per_target.clear()
        self.per_status.clear()
        self.peak_in_flight = self.in_flight


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


_ERROR_BYTES = {status: _dumps(body) for status, body in ERROR_BODIES.items()}
_API_NOT_FOUND = _dumps(
    gateway_error(
        "APIG.0101", "The API does not exist or has not been published in the environment"
    )
)
_IAM_UNAUTHORIZED = _dumps(
    {
        "error": {
            "code": 401,
            "message": "The username or password is wrong.",
            "title": "Unauthorized",
        },
        "error_code": "IAM.0004",
        "error_msg": "The username or password is wrong.",
    }
)
_LINGER_RESET = struct.pack("ii", 1, 0)

#: A tag list API of :mod:`crawler.sandbox.lists` (v2 or v3): catalogue, namespace,
#: repository and query in, answer out; likewise a repository list API.
_TagList = Callable[[Catalogue, str, str, Mapping[str, str]], lists.Answer]
_RepoList = Callable[[Catalogue, Mapping[str, str]], lists.Answer]


class SandboxServer:
    """The state and the handlers of one sandbox application."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.catalogue = Catalogue(
            config.seed,
            config.namespaces,
            config.repos_per_namespace,
            config.tags_per_repo,
            tag_counts=config.tag_counts,
            generation=config.generation,
            extreme_sizes=config.extreme_sizes,
            cache_size=config.cache_size,
            empty_namespaces=config.empty_namespaces,
            absent_fields=config.absent_fields,
        )
        self.auth = Authenticator(
            tokens=config.tokens,
            credentials=config.credentials,
            iam_users=config.iam_users,
            token_ttl=config.token_ttl,
            max_skew=config.max_clock_skew,
        )
        self.faults = FaultInjector(config.faults, time.monotonic())
        self.stats = Stats()
        self._latency = config.faults.latency
        self._track_targets = config.track_targets
        faults = config.faults
        self._throttled = _dumps(throttled_error(faults.rate_limit, faults.stated_window))
        self._request_ids = itertools.count()
        self._request_id_prefix = os.urandom(10).hex()

    # -- plumbing ------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        request_id = f"{self._request_id_prefix}{next(self._request_ids):012x}"
        return {"Content-Type": CONTENT_TYPE, "X-Request-Id": request_id}

    async def _send(
        self,
        request: web.Request,
        status: int,
        body: bytes,
        extra_headers: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """Answer and wait until it is written (the in-flight count covers the sending)."""
        headers = self._headers()
        if extra_headers:
            headers.update(extra_headers)
        stats = self.stats
        stats.per_status[status] += 1
        if status == 429:
            stats.throttled += 1
        response = web.Response(status=status, body=body, headers=headers)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away; aiohttp drops the connection
        return response

    def _reset(self, request: web.Request) -> web.StreamResponse:
        """Reset the TCP connection: SO_LINGER 0 makes close() send an RST."""
        self.stats.resets += 1
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            transport.abort()
        # Never sent: aiohttp finds the transport closed and drops the request.
        return web.Response(status=200)

    async def _authenticate(self, request: web.Request) -> Denied | None:
        if not self.config.require_auth:
            return None
        headers = request.headers
        denied: Denied | None = None
        token = headers.get("X-Auth-Token")
        if token is not None:
            denied = self.auth.check_token(token)
            if denied is None:
                return None
        authorization = headers.get("Authorization")
        if authorization is not None and authorization.startswith("SDK-HMAC-SHA256"):
            body = await request.read() if request.body_exists else b""
            url = request.rel_url
            return check_signature(
                authorization,
                SignedRequest(request.method, url.raw_path, url.query.items(), headers, body),
                self.config.credentials,
                time.time(),
                self.config.max_clock_skew,
            )
        return denied or TOKEN_DENIED

    async def _gate(self, request: web.Request) -> web.StreamResponse | None:
        """Latency, rate limit and authentication: an answer when the request stops here."""
        if self._latency:
            await asyncio.sleep(self._latency)
        if not self.faults.admit(time.monotonic()):
            return await self._send(request, 429, self._throttled)
        denied = await self._authenticate(request)
        if denied is not None:
            body = _dumps(gateway_error(denied.error_code, denied.error_msg))
            return await self._send(request, 401, body)
        return None

    # -- tag details -----------------------------------------------------------

    async def tag_details(self, request: web.Request) -> web.StreamResponse:
        """``GET /v2/manage/namespaces/{namespace}/repos/{repository}/tags/{tag}``."""
        stats = self.stats
        stats.arrived()
        stats.tag_requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.peak_in_flight:
            stats.peak_in_flight = stats.in_flight
        try:
            return await self._tag_details(request)
        finally:
            stats.in_flight -= 1

    async def _tag_details(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        namespace = info["namespace"]
        repository = info["repository"].replace("$", "/")
        tag = info["tag"]
        key = f"{namespace}/{repository}:{tag}"
        if self._track_targets:
            self.stats.per_target[key] += 1
        stopped = await self._gate(request)
        if stopped is not None:
            return stopped
        action = self.faults.next_action(key)
        kind = action.kind
        if kind == "normal":
            return await self._serve(request, namespace, repository, tag)
        if kind == "status":
            return await self._send_status(request, action)
        if kind == "reset":
            return self._reset(request)
        if kind == "slow":
            await asyncio.sleep(self.config.faults.slow_seconds)
            return await self._serve(request, namespace, repository, tag)
        # truncated: a 200 whose JSON stops half-way
        body = self.catalogue.body(namespace, repository, tag) or _ERROR_BYTES[404]
        return await self._send(request, 200, body[: max(1, len(body) // 2)])

    async def _serve(
        self, request: web.Request, namespace: str, repository: str, tag: str
    ) -> web.StreamResponse:
        body = self.catalogue.body(namespace, repository, tag)
        if body is not None:
            return await self._send(request, 200, body)
        if valid_namespace(namespace) and valid_repository(repository) and valid_tag(tag):
            return await self._send(request, 404, _ERROR_BYTES[404])
        return await self._send(request, 400, _ERROR_BYTES[400])

    async def _send_status(self, request: web.Request, action: Action) -> web.StreamResponse:
        status = action.status
        if status != 429:
            return await self._send(request, status, _ERROR_BYTES[status])
        headers: dict[str, str] = {}
        if action.retry_after is not None:
            if action.retry_after_is_date:
                when = time.time() + action.retry_after
                headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
            else:
                headers["Retry-After"] = f"{action.retry_after:g}"
        return await self._send(request, 429, self._throttled, headers)

    # -- lists ---------------------------------------------------------------

    async def _list(
        self, request: web.Request, key: str, answer: Callable[[], lists.Answer]
    ) -> web.StreamResponse:
        """Answer a list request; ``key`` names the listing for fault scripts
        (``namespaces``, ``repos:NS``, ``tags:NS/REPO``): only scripted faults
        reach list pages, never the random ones."""
        stats = self.stats
        stats.arrived()
        stats.list_requests += 1
        stopped = await self._gate(request)
        if stopped is not None:
            return stopped
        action = self.faults.next_action(key) if self.faults.script_left(key) else None
        if action is not None and action.kind == "status":
            return await self._send_status(request, action)
        if action is not None and action.kind == "reset":
            return self._reset(request)
        if action is not None and action.kind == "slow":
            await asyncio.sleep(self.config.faults.slow_seconds)
        status, value, headers = answer()
        body = _dumps(value)
        if action is not None and action.kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        return await self._send(request, status, body, headers)

    async def list_tags_v2(self, request: web.Request) -> web.StreamResponse:
        """ListRepositoryTags (v2)."""
        return await self._list_tags(request, lists.list_repository_tags_v2)

    async def list_tags_v3(self, request: web.Request) -> web.StreamResponse:
        """ListRepositoryTag (v3); the gateway's 404 where it is switched off."""
        if not self.config.v3_tags:
            self.stats.list_requests += 1
            return await self.no_such_api(request)
        return await self._list_tags(request, lists.list_repository_tags_v3)

    async def _list_tags(self, request: web.Request, api: _TagList) -> web.StreamResponse:
        """A tag list of the repository in the path, by ``api`` (v2 or v3)."""
        info = request.match_info
        namespace, repository = info["namespace"], info["repository"].replace("$", "/")
        query = request.rel_url.query
        return await self._list(
            request,
            f"tags:{namespace}/{repository}",
            lambda: api(self.catalogue, namespace, repository, query),
        )

    async def list_namespaces(self, request: web.Request) -> web.StreamResponse:
        """ListNamespaces."""
        return await self._list(
            request,
            "namespaces",
            lambda: lists.list_namespaces(self.catalogue, request.rel_url.query),
        )

    async def list_repos_v2(self, request: web.Request) -> web.StreamResponse:
        """ListReposDetails (v2)."""
        return await self._list_repos(request, lists.list_repos_details_v2)

    async def list_repos_v3(self, request: web.Request) -> web.StreamResponse:
        """ListRepoDetails (v3)."""
        return await self._list_repos(request, lists.list_repo_details_v3)

    async def _list_repos(self, request: web.Request, api: _RepoList) -> web.StreamResponse:
        """A repository list by ``api`` (v2 or v3), scripted per ``namespace`` filter."""
        query = request.rel_url.query
        return await self._list(
            request,
            f"repos:{query.get('namespace', '')}",
            lambda: api(self.catalogue, query),
        )

    # -- IAM and the rest ----------------------------------------------------

    async def iam_tokens(self, request: web.Request) -> web.StreamResponse:
        """IAM ``POST /v3/auth/tokens`` (password method): 201 + ``X-Subject-Token``."""
        self.stats.iam_logins += 1
        if self._latency:
            await asyncio.sleep(self._latency)
        try:
            result = self.auth.login(orjson.loads(await request.read()))
        except (orjson.JSONDecodeError, ValueError) as exc:
            body = {"error": {"code": 400, "message": str(exc), "title": "Bad Request"}}
            return await self._send(request, 400, _dumps(body))
        if result is None:
            return await self._send(request, 401, _IAM_UNAUTHORIZED)
        token, answer = result
        return await self._send(request, 201, _dumps(answer), {"X-Subject-Token": token})

    async def no_such_api(self, request: web.Request) -> web.StreamResponse:
        """Any other path or method: the gateway's 404."""
        self.stats.arrived()
        return await self._send(request, 404, _API_NOT_FOUND)


#: Where :func:`create_app` keeps the :class:`SandboxServer` of an application.
SERVER_KEY = web.AppKey("sandbox_server", SandboxServer)


def create_app(config: SandboxConfig | None = None) -> web.Application:
    """The sandbox as an aiohttp application (``app[SERVER_KEY]`` holds its state)."""
    server = SandboxServer(config or SandboxConfig())
    app = web.Application()
    app[SERVER_KEY] = server
    repo = "/namespaces/{namespace}/repos/{repository}/tags"
    app.router.add_get(TAG_ROUTE, server.tag_details, allow_head=False)
    app.router.add_get("/v2/manage" + repo, server.list_tags_v2, allow_head=False)
    app.router.add_get("/v3/manage" + repo, server.list_tags_v3, allow_head=False)
    app.router.add_get("/v2/manage/namespaces", server.list_namespaces, allow_head=False)
    app.router.add_get("/v2/manage/repos", server.list_repos_v2, allow_head=False)
    app.router.add_get("/v3/manage/repos", server.list_repos_v3, allow_head=False)
    app.router.add_post("/v3/auth/tokens", server.iam_tokens)
    app.router.add_route("*", "/{tail:.*}", server.no_such_api)
    return app


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox listening on a socket."""

    url: str
    host: str
    port: int
    config: SandboxConfig
    server: SandboxServer

    @property
    def stats(self) -> Stats:
        """The live counters."""
        return self.server.stats

    @property
    def catalogue(self) -> Catalogue:
        """What it serves."""
        return self.server.catalogue


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox on ``host:port`` (0 = a free port) for the ``async with`` block."""
    config = config or SandboxConfig()
    app = create_app(config)
    # handler_cancellation: a client that gives up (timeout) frees its handler
    # at once, so a slow answer does not count as in flight after the client left.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=1.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound_port = int(runner.addresses[0][1])
        url_host = f"[{host}]" if ":" in host else host
        yield RunningSandbox(
            url=f"http://{url_host}:{bound_port}",
            host=host,
            port=bound_port,
            config=config,
            server=app[SERVER_KEY],
        )
    finally:
        await runner.cleanup()


@contextmanager
def sandbox_in_thread(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSandbox]:
    """The sandbox on its own event loop in a daemon thread, for synchronous callers.

    Read ``stats`` only after the requests you care about have been answered.
    """
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = stop
        try:
            async with running_sandbox(config, host, port) as sandbox:
                holder["sandbox"] = sandbox
                started.set()
                await stop.wait()
        except BaseException as exc:
            holder["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    started.wait()
    if "error" in holder:
        thread.join()
        raise RuntimeError("the sandbox did not start") from holder["error"]
    try:
        yield holder["sandbox"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join()
