"""Raw-socket test peers for the HTTP client: a server that answers with scripted bytes,
and a forward proxy (``CONNECT`` tunnels and absolute-form requests).

Neither is an HTTP implementation: each reads a request head (and a
``Content-Length`` body), records it, and then does exactly what it was told,
byte for byte, however wrong that is. :func:`running_wire` serves a
:class:`Wire`; each request's :class:`Reply` comes from ``routes`` (by path)
or from ``script`` (a function of the :class:`Received` request)::

    Reply.of(answer(200, b"hi"))          answer with exact bytes, keep the connection
    Reply.of(data, then="close")          answer, then close the connection
    CLOSE                                 close without answering
    STALL                                 never answer (until the test ends)
    Reply.trickle(data, size=1)           the answer in many tiny writes
    Reply.of(head, then="stall")          part of an answer, then nothing
    Reply((data,), gate=event)            answer once the test sets ``event``
    Reply(parts, pace=0.05)               a slow server: 50 ms between writes

``on_accept`` is a :class:`Reply` acted on as soon as a connection is accepted,
before any request is read (``CLOSE``: hang up on a TLS handshake).

Everything runs on 127.0.0.1 in the test's event loop; every loop is bounded and
every task is cancelled when the context manager exits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

#: Most requests served on one connection, and most bytes of a request body read.
MAX_REQUESTS_PER_CONNECTION = 100
MAX_REQUEST_BODY = 1 << 20
#: Most bytes of a request head (request line and headers).
MAX_HEAD = 64 * 1024
#: Most bytes a proxy tunnel carries each way.
MAX_TUNNEL_BYTES = 64 << 20


@dataclass(frozen=True)
class Received:
    """One request as it arrived: its request line, headers in order, and body."""

    connection: int
    """The 0-based number of the connection it came on, in the order they were accepted."""
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The target's path (an absolute-form target's too), without the query."""
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        """The target's query, decoded as a server would."""
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def values(self, name: str) -> list[str]:
        """Every value of the header ``name`` (case-insensitive), in the order sent."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass(frozen=True)
class Reply:
    """What the server does with one request: write ``parts`` one write each (waiting for
    ``gate``, if given, before ``parts[gate_before]``; ``pace`` seconds between writes, a
    slow server), then ``then``: ``keep`` the connection for the next request, ``close``
    it, or ``stall`` forever."""

    parts: tuple[bytes, ...] = ()
    then: Literal["keep", "close", "stall"] = "keep"
    gate: asyncio.Event | None = None
    gate_before: int = 0
    pace: float = 0.0

    @classmethod
    def of(cls, data: bytes, then: Literal["keep", "close", "stall"] = "keep") -> Reply:
        """``data`` in one write."""
        return cls((data,), then)

    @classmethod
    def trickle(
        cls, data: bytes, size: int = 1, then: Literal["keep", "close", "stall"] = "keep"
    ) -> Reply:
        """``data`` in writes of ``size`` bytes, the event loop turning between them."""
        return cls(tuple(data[i : i + size] for i in range(0, len(data), size)), then)


#: Close the connection without answering.
CLOSE = Reply(then="close")
#: Never answer: the connection stays open and silent until the test ends.
STALL = Reply(then="stall")


def answer(
    status: int = 200,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    reason: str = "OK",
    length: bool = True,
) -> bytes:
    """A well-formed HTTP/1.1 answer: status line, ``headers``, ``Content-Length`` (unless
    ``length`` is false), a blank line, ``body``."""
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(
    chunks: Iterable[bytes],
    headers: Iterable[tuple[str, str]] = (),
    *,
    extension: str = "",
    trailers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A 200 with ``Transfer-Encoding: chunked``: each chunk sized in hex (with
    ``extension`` after the size), the last chunk, then ``trailers``."""
    head = answer(200, headers=[*headers, ("Transfer-Encoding", "chunked")], length=False)
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(c), extension.encode(), c) for c in chunks if c)
    tail = "".join(f"{k}: {v}\r\n" for k, v in trailers).encode("latin-1")
    return head + body + b"0\r\n" + tail + b"\r\n"


Script = Callable[[Received], Reply]


@dataclass
class Wire:
    """A scripted server's state: what it was told to do and what it saw."""

    routes: Mapping[str, Reply] = field(default_factory=dict)
    script: Script | None = None
    on_accept: Reply | None = None
    """What to do as soon as a connection is accepted, before reading any request."""
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    """Connections accepted so far."""
    url: str = ""

    def reply_to(self, request: Received) -> Reply:
        if self.script is not None:
            return self.script(request)
        return self.routes.get(request.path, Reply.of(answer(404, b"no route", reason="NF")))


async def read_request(reader: asyncio.StreamReader, connection: int) -> Received | None:
    """The next request on a connection (head, then a ``Content-Length`` body), or None when
    the client hung up or sent something that is not a request head."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        return None
    headers = tuple(
        (name, value.strip()) for name, _, value in (line.partition(":") for line in header_lines)
    )
    request = Received(connection, parts[0], parts[1], parts[2], headers)
    lengths = request.values("Content-Length")
    if lengths and parts[0] != "CONNECT":
        if not lengths[0].isdigit() or int(lengths[0]) > MAX_REQUEST_BODY:
            return None
        size = int(lengths[0])
        try:
            body = await reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        request = Received(connection, parts[0], parts[1], parts[2], headers, body)
    return request


async def _write(writer: asyncio.StreamWriter, reply: Reply) -> None:
    for i, part in enumerate(reply.parts):
        if i == reply.gate_before and reply.gate is not None:
            await reply.gate.wait()
        elif i:
            # At least one turn of the event loop, so the client reads what is there
            # before the next write.
            await asyncio.sleep(reply.pace)
        writer.write(part)
        await writer.drain()


@asynccontextmanager
async def _serving(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """Serve ``handle`` on 127.0.0.1 (a free port, yielded); on exit, stop listening,
    cancel every connection's handler, and raise what a handler failed with."""
    handlers: set[asyncio.Task[None]] = set()
    failures: list[Exception] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass  # the client hung up or its TLS failed: the test sees that from its side
        except Exception as exc:  # a broken script: raised again when the test ends
            failures.append(exc)
        finally:
            writer.close()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A task of our own (not asyncio's wrapper of a coroutine callback, which
        # Python 3.11 reports as an error when it is cancelled), cancelled at exit.
        task = asyncio.get_running_loop().create_task(serve(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    server = await asyncio.start_server(connected, "127.0.0.1", 0, ssl=tls, limit=MAX_HEAD)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
    if failures:
        raise failures[0]


@asynccontextmanager
async def running_wire(
    routes: Mapping[str, Reply] | None = None,
    *,
    script: Script | None = None,
    on_accept: Reply | None = None,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Wire]:
    """A scripted server on 127.0.0.1 in this event loop; ``.url`` is its origin
    (``https://`` when ``tls`` is given)."""
    wire = Wire(routes=routes or {}, script=script, on_accept=on_accept)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = wire.accepted
        wire.accepted += 1
        if wire.on_accept is not None:
            await _write(writer, wire.on_accept)
            if wire.on_accept.then == "close":
                return
            if wire.on_accept.then == "stall":
                await asyncio.Future()  # until the test ends and cancels it
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            request = await read_request(reader, connection)
            if request is None:
                return
            wire.received.append(request)
            reply = wire.reply_to(request)
            await _write(writer, reply)
            if reply.then == "close":
                return
            if reply.then == "stall":
                await asyncio.Future()  # until the test ends and cancels it

    async with _serving(handle, tls) as port:
        wire.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        yield wire


@dataclass
class Proxy:
    """A forward proxy's state: the credentials it demands and the request heads it got."""

    credentials: tuple[str, str] | None = None
    """``(user, password)`` it requires in ``Proxy-Authorization: Basic``; None: any."""
    seen: list[Received] = field(default_factory=list)
    url: str = ""

    def authorised(self, request: Received) -> bool:
        if self.credentials is None:
            return True
        return request.values("Proxy-Authorization") == [basic(*self.credentials)]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until end of file (at most :data:`MAX_TUNNEL_BYTES`),
    then half-close ``writer``."""
    copied = 0
    # A side that hung up mid-tunnel (ConnectionError, or ENOTCONN on write_eof) ends the copy.
    with contextlib.suppress(OSError):
        while copied < MAX_TUNNEL_BYTES:
            data = await reader.read(65536)
            if not data:
                break
            copied += len(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _tunnel(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Carry bytes both ways until both sides are done, then close the target's side."""
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_pipe(client[0], target[1]))
            group.create_task(_pipe(target[0], client[1]))
    finally:
        target[1].close()


@asynccontextmanager
async def running_proxy(
    credentials: tuple[str, str] | None = None, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Proxy]:
    """A forward proxy on 127.0.0.1, one request per client connection: ``CONNECT
    host:port`` opens a TCP tunnel (answered ``200``); an absolute-form request is passed
    on with ``Connection: close``, its answer carried back, the connection closed; without
    the ``credentials`` demanded, a ``407``. ``tls``: the proxy itself speaks TLS
    (``https://``)."""
    proxy = Proxy(credentials)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader, len(proxy.seen))
        if request is None:
            return
        proxy.seen.append(request)
        if not proxy.authorised(request):
            challenge = [("Proxy-Authenticate", 'Basic realm="test"'), ("Connection", "close")]
            writer.write(answer(407, b"auth", challenge, reason="Proxy Authentication Required"))
            await writer.drain()
            return
        if request.method == "CONNECT":
            host, _, port = request.target.rpartition(":")
            target = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _tunnel((reader, writer), target)
            return
        parts = urlsplit(request.target)
        target = await asyncio.open_connection(parts.hostname, parts.port or 80)
        origin_form = parts.path + (f"?{parts.query}" if parts.query else "")
        kept = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
        head = [
            f"{request.method} {origin_form} {request.version}",
            *(f"{k}: {v}" for k, v in kept),
        ]
        head.append("Connection: close")
        target_reader, target_writer = target
        target_writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
        try:
            await _pipe(target_reader, writer)  # the answer, then this connection is closed
        finally:
            target_writer.close()

    async with _serving(handle, tls) as port:
        proxy.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        yield proxy


#: Headers a proxy consumes rather than passes on.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection"})


def basic(user: str, password: str) -> str:
    """The ``Proxy-Authorization`` value for ``user`` and ``password``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
