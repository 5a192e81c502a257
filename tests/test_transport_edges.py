"""The transport where a review found it wrong: a close while a request waits, a body until
close cut by a reset, secrets in what a server echoes, each proven on real sockets."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import pytest

from crawler.errors import ErrorKind, TransportError
from crawler.http.secrets import Scrubber
from crawler.http.transport import Transport
from tests.wire import STALL, Received, Reply, running_wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_proxy_env")]


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Each test on both event loops a run may get (``--uvloop``)."""
    return cast(tuple[str, dict[str, bool]], request.param)


#: No test may take longer than this, whatever the transport does.
GUARD = 5.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[str]:
    """A server on 127.0.0.1 running ``handle`` per connection, which finds reading paused
    (so that nothing is read before a ``start_tls``, which resumes it); yields its origin."""
    tasks: set[asyncio.Task[None]] = set()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        task = asyncio.get_running_loop().create_task(handle(reader, writer))
        tasks.add(task)

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def refused(url: str, scrubber: Scrubber | None = None) -> TransportError:
    """The ``TransportError`` a ``GET`` of ``url`` raises on a transport of its own."""
    async with Transport(timeout=2, max_connections=1, scrubber=scrubber) as transport:
        with anyio.fail_after(GUARD), pytest.raises(TransportError) as raised:
            await transport.request("GET", url, headers={})
    return raised.value


async def test_aclose_fails_a_request_waiting_for_its_answer_at_once() -> None:
    """A request in flight when the transport is closed fails as a network error, not later
    as a timeout."""
    asked = asyncio.Event()

    def script(request: Received) -> Reply:
        asked.set()
        return STALL

    transport = Transport(timeout=60, max_connections=1)
    async with running_wire(script=script) as wire:
        with anyio.fail_after(GUARD):
            pending = asyncio.create_task(transport.request("GET", f"{wire.url}/", headers={}))
            await asked.wait()
            await transport.aclose()
            with pytest.raises(TransportError) as raised:
                await pending
    assert raised.value.kind == ErrorKind.NETWORK


async def test_a_body_until_close_cut_by_a_reset_is_an_error_not_an_answer() -> None:
    """No length: a connection reset (not a close) ends the body, which may be cut short."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.resume_reading()  # type: ignore[attr-defined]
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npart of a bo")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: a reset

    async with raw_server(handle) as url:
        error = await refused(f"{url}/")
    assert error.kind == ErrorKind.NETWORK


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nEcho X-Auth-Token %s\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: echo X-Auth-Token %s\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: echo X-Auth-Token %s\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\necho X-Auth-Token %s\r\n",
        b"HTTP/1.2 200 %s\r\n\r\n",
    ],
    ids=["header-line", "content-length", "content-encoding", "chunk-size", "status-line"],
)
async def test_no_part_of_a_secret_a_server_echoes_reaches_the_error(head: bytes) -> None:
    """A broken answer quoting the token: the error holds no piece of it (cut, then scrubbed)."""
    token = "MIIToken" + "s3cr3t" * 20
    scrubber = Scrubber()
    scrubber.add(token)
    routes = {"/": Reply.of(head % token.encode())}
    async with running_wire(routes) as wire:
        error = await refused(f"{wire.url}/", scrubber)
    assert "s3cr3t" not in str(error), str(error)


# The test server's StreamWriter.start_tls never completes on uvloop: asyncio's loop only.
@pytest.mark.parametrize("anyio_backend", [("asyncio", {"use_uvloop": False})], ids=["asyncio"])
async def test_a_connection_made_after_aclose_carries_no_request(
    trusted_tls: ssl.SSLContext,
) -> None:
    """aclose while a TLS handshake is under way: once it completes, no request goes out."""
    accepted, handshake = asyncio.Event(), asyncio.Event()
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await handshake.wait()
        await writer.start_tls(trusted_tls)
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    transport = Transport(timeout=2, max_connections=1)
    async with raw_server(handle) as url:
        with anyio.fail_after(GUARD):
            pending = asyncio.create_task(
                transport.request("GET", url.replace("http:", "https:") + "/", headers={})
            )
            await accepted.wait()
            await transport.aclose()
            handshake.set()
            with pytest.raises(TransportError) as raised:
                await pending
    assert (raised.value.kind, requests) == (ErrorKind.NETWORK, [])
