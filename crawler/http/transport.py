"""The one seam for network I/O: every HTTP request of a run, to SWR and to IAM.

:meth:`Transport.request` sends one request and returns an
:class:`~crawler.http.response.Answer` or raises a
:class:`~crawler.errors.TransportError`. It speaks HTTP/1.1 itself, over
asyncio connections (:mod:`crawler.http.h1` reads and writes the bytes):
a crawl is tens of thousands of small keep-alive GETs to one host, and a
general client's machinery per request (aiohttp's costs about twice the
CPU of the whole exchange here, see the README) would be most of a crawl's
CPU. No library type crosses its interface. What it guarantees, whatever the
server does:

* **One request per call.** Redirects are never followed (a 3xx is returned
  as it is), and a request is never resent by itself, not even on a
  keep-alive connection the server closed: every request is counted and
  rate-limited by the caller, whose retry policy handles the failure.
* **Bounded time:** ``timeout`` seconds for the whole exchange (connection,
  TLS, proxy tunnel and body included).
* **Bounded memory:** a body over ``max_body_bytes`` (as announced by
  ``Content-Length``, as received on the wire, or once decompressed) ends
  the read at once: ``TransportError`` of kind ``too_large``; gzip and
  deflate are inflated in bounded steps, so a gzip bomb never expands in one
  go. Headers are bounded too (8190 bytes a line, 64 KiB in all).
* **Connections:** at most ``max_connections`` requests at once, each on a
  connection of its own; a connection is kept for the next request while
  the server allows it (HTTP/1.1 keep-alive, idle at most
  :data:`IDLE_SECONDS`), and dropped after anything unexpected.
* **TLS:** certificates are verified (the system's CAs, or ``SSL_CERT_FILE``),
  with the context of :mod:`crawler.http.tls`, built at the first ``https://``
  connection; a certificate that does not verify is kind ``tls``, which stops the run.
* **Proxies:** ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (either case) are
  read once per host, as ``urllib`` reads them; ``~/.netrc`` is not read. An
  ``https://`` endpoint is reached through a ``CONNECT`` tunnel, an ``http://``
  one by asking the proxy for the absolute URL; ``user:password@`` in the
  proxy's URL becomes ``Proxy-Authorization`` (Basic), sent to the proxy only.
* **No secret in an error:** every message is scrubbed by the run's
  :class:`~crawler.http.secrets.Scrubber` and kept to one short line.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple, cast
from urllib.parse import unquote, urlsplit

import structlog

from crawler.errors import ErrorKind, TransportError
from crawler.http.h1 import AnswerReader, BodyTooLarge, ProtocolError, Reply, encode_request
from crawler.http.response import DEFAULT_MAX_BODY_BYTES, KEPT_HEADERS, Answer
from crawler.http.secrets import Scrubber
from crawler.http.signer import encode_component
from crawler.http.tls import client_context

__all__ = ["IDLE_SECONDS", "Transport"]
#: Most characters of a connection failure's description.
MESSAGE_LIMIT: Final = 300
#: Seconds a kept connection may stay idle before it is closed instead of reused
#: (servers drop idle keep-alive connections after some time of their own).
IDLE_SECONDS: Final = 15.0
#: Sent with every request unless the caller gives its own: the encodings the reader inflates.
ACCEPT_ENCODING: Final = "gzip, deflate"

_log = structlog.get_logger("crawler.http")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class _Proxy(NamedTuple):
    scheme: str
    host: str
    port: int
    authorization: str | None
    """The ``Proxy-Authorization`` value, when the proxy's URL held credentials."""


class _Route(NamedTuple):
    """How requests to one origin (``scheme://host[:port]``) travel."""

    scheme: str
    host: str
    port: int
    host_header: str
    proxy: _Proxy | None
    absolute: str
    """The prefix of the request target: the origin for plain http through a proxy, else ''."""
    extra: tuple[tuple[str, str], ...]
    """Headers added to every request on this route (Accept-Encoding, Proxy-Authorization)."""


class _Connection(asyncio.Protocol):
    """One connection: carries one request at a time and reads its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reader: AnswerReader | None = None
        self._waiter: asyncio.Future[Reply] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is one without deriving from asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:  # nothing was asked: a server that talks out of turn
            self.close()
            return
        try:
            reply = reader.feed(data)
        except (ProtocolError, BodyTooLarge) as exc:
            self._fail(exc)
            return
        if reply is not None:
            self._reader = None
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        reader = self._reader
        if reader is None:
            self.closed = True
            return
        try:
            reply = reader.feed_eof()
            if exc is not None:  # a reset, not a close: a body read until close may be cut
                raise ProtocolError("the connection failed before the answer ended")
        except ProtocolError as error:
            if exc is not None:
                error = ProtocolError(f"{error} ({type(exc).__name__}: {exc})")
            self._fail(error)
            return
        self._reader = None
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(reply)

    def _fail(self, exc: BaseException) -> None:
        self._reader = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    async def exchange(self, request: bytes, reader: AnswerReader) -> Reply:
        """Send ``request`` and wait for the whole answer."""
        assert self.transport is not None
        self._reader = reader
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        self._reader = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():  # closed under a request (aclose)
            waiter.set_exception(ConnectionAbortedError("the connection was closed"))
        if self.transport is not None:
            self.transport.close()


class Transport:
    """One connection pool and the rules above, shared by the SWR client and the IAM login."""

    def __init__(
        self,
        *,
        timeout: float,
        max_connections: int,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.scrubber = scrubber if scrubber is not None else Scrubber()
        """Every secret of the run; credentials add theirs, IAM each token it issues."""
        self._slots = asyncio.Semaphore(max_connections)
        self._routes: dict[str, _Route] = {}
        self._idle: dict[_Route, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        query: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Answer:
        """Send one request to ``url`` (already percent-encoded) and read its answer."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        origin, rest = _split_origin(url)
        route = self._routes.get(origin)
        if route is None:
            route = self._routes[origin] = self._route(origin)
        target = route.absolute + (rest or "/")
        if query:
            target += "?" + "&".join(
                f"{encode_component(k)}={encode_component(v)}" for k, v in query
            )
        try:
            sent = dict(headers)
            if "Host" not in sent and "host" not in sent:
                sent["Host"] = route.host_header
            for name, value in route.extra:
                sent.setdefault(name, value)
            data = encode_request(method, target, sent, body)
        except ValueError as exc:
            raise TransportError(ErrorKind.NETWORK, self.describe(exc)) from None
        async with self._slots:
            try:
                async with asyncio.timeout(self.timeout):
                    reply = await self._exchange(route, data)
            except TransportError:
                raise
            except TimeoutError:
                raise TransportError(
                    ErrorKind.TIMEOUT, f"no answer within the timeout of {self.timeout:g} s"
                ) from None
            except BodyTooLarge as exc:
                raise TransportError(ErrorKind.TOO_LARGE, self._too_large(exc)) from None
            except (OSError, ValueError) as exc:  # ProtocolError is a ValueError
                raise TransportError(_kind_of(exc), self.describe(exc)) from None
        return Answer(reply.status, reply.body, reply.headers)

    async def _exchange(self, route: _Route, data: bytes) -> Reply:
        connection = self._reuse(route)
        if connection is None:
            connection = await self._connect(route)
        clean = False
        try:
            reply = await connection.exchange(data, AnswerReader(self.max_body_bytes, KEPT_HEADERS))
            clean = reply.reusable and not connection.closed
            return reply
        finally:
            if clean and not self._closed:
                connection.idle_since = time.monotonic()
                self._idle.setdefault(route, []).append(connection)
            else:  # failed, cancelled or not to be reused: never handed to another request
                connection.close()
                self._open.discard(connection)

    def _reuse(self, route: _Route) -> _Connection | None:
        idle = self._idle.get(route)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the likeliest to be alive
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
            self._open.discard(connection)
        return None

    async def _connect(self, route: _Route) -> _Connection:
        proxy = route.proxy
        hop = proxy or route  # the first connection goes to the proxy, when there is one
        tls = self._tls_context() if hop.scheme == "https" else None
        _, connection = await asyncio.get_running_loop().create_connection(
            _Connection, hop.host, hop.port, ssl=tls, server_hostname=hop.host if tls else None
        )
        self._open.add(connection)
        try:
            if self._closed:  # aclose came while connecting: nothing goes out after it
                raise ConnectionAbortedError("the transport was closed")
            if proxy is not None and route.scheme == "https":
                await self._tunnel(connection, route, proxy)
        except BaseException:
            connection.close()
            self._open.discard(connection)
            raise
        return connection

    async def _tunnel(self, connection: _Connection, route: _Route, proxy: _Proxy) -> None:
        """``CONNECT`` through the proxy, then TLS with the endpoint inside the tunnel."""
        authority = f"{_bracketed(route.host)}:{route.port}"
        headers = {"Host": authority}
        if proxy.authorization is not None:
            headers["Proxy-Authorization"] = proxy.authorization
        reply = await connection.exchange(
            encode_request("CONNECT", authority, headers, b""),
            AnswerReader(self.max_body_bytes, head_only=True),
        )
        if not 200 <= reply.status < 300:
            raise ProtocolError(f"the proxy refused to open a tunnel: HTTP {reply.status}")
        assert connection.transport is not None
        transport = await asyncio.get_running_loop().start_tls(
            connection.transport, connection, self._tls_context(), server_hostname=route.host
        )
        connection.transport = cast(asyncio.Transport, transport)

    def _route(self, origin: str) -> _Route:
        parts = urlsplit(origin)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(scheme, 80)
        if scheme not in _DEFAULT_PORTS or not host:
            raise TransportError(ErrorKind.NETWORK, f"not an http(s) URL: {origin[:80]!r}")
        default = port == _DEFAULT_PORTS[scheme]
        host_header = _bracketed(host) if default else f"{_bracketed(host)}:{port}"
        proxy = self._find_proxy(scheme, host)
        extra = [("Accept-Encoding", ACCEPT_ENCODING)]
        absolute = ""
        if proxy is not None and scheme == "http":
            absolute = origin  # a proxy is asked for the whole URL
            if proxy.authorization is not None:
                extra.append(("Proxy-Authorization", proxy.authorization))
        return _Route(scheme, host, port, host_header, proxy, absolute, tuple(extra))

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = client_context()  # loads the CA file once (~25 ms), for https only
        return self._tls

    def _find_proxy(self, scheme: str, host: str) -> _Proxy | None:
        """The proxy the environment names for ``scheme://host``, as urllib reads it."""
        if host and urllib.request.proxy_bypass(host):
            return None
        found = urllib.request.getproxies().get(scheme)
        if not found:
            return None
        try:
            parts = urlsplit(found if "://" in found else f"http://{found}")
            proxy_scheme = parts.scheme
            if proxy_scheme not in _DEFAULT_PORTS or not parts.hostname:
                raise ValueError(proxy_scheme)
            proxy_port = parts.port or _DEFAULT_PORTS[proxy_scheme]
        except ValueError:
            _log.warning("http.proxy_unusable", scheme=scheme, host=host)
            return None
        authorization = None
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            self.scrubber.add(parts.password)
            self.scrubber.add(password)
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self.scrubber.add(token)
            authorization = f"Basic {token}"
        shown = f"{proxy_scheme}://{_bracketed(parts.hostname)}:{proxy_port}"
        _log.info("http.proxy", scheme=scheme, host=host, proxy=shown)
        return _Proxy(proxy_scheme, parts.hostname, proxy_port, authorization)

    def _too_large(self, exc: BodyTooLarge) -> str:
        cap = self.max_body_bytes
        if exc.announced is not None:
            return f"the answer announces {exc.announced} bytes, over --max-body-bytes ({cap})"
        return f"the answer is over --max-body-bytes ({cap} bytes): the rest was not read"

    def describe(self, exc: BaseException) -> str:
        """A one-line, scrubbed description of a failure (no URL credentials, no stack)."""
        text = str(exc).strip() or type(exc).__name__
        return self.scrubber(f"{type(exc).__name__}: {text}", MESSAGE_LIMIT)

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (``async with Transport(...)`` does it on leaving)."""
        self._closed = True
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()


def _split_origin(url: str) -> tuple[str, str]:
    """``("scheme://host:port", "/path")`` of an absolute URL (the path may be empty)."""
    start = url.find("://")
    end = url.find("/", start + 3) if start >= 0 else -1
    if end < 0:
        return url, ""
    return url[:end], url[end:]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _kind_of(exc: BaseException) -> ErrorKind:
    """``tls`` for a certificate that does not verify, else ``network``."""
    cause: BaseException | None = exc
    for _ in range(5):  # the certificate error may be wrapped
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ErrorKind.TLS
        cause = cause.__cause__ or cause.__context__
    return ErrorKind.NETWORK
