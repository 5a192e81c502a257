"""The transport where a review found it wrong, each case proven on real sockets."""

from __future__ import annotations

import anyio
import pytest

from crawler.errors import TransportError
from crawler.http.secrets import Scrubber
from crawler.http.transport import Transport
from tests.wire import Reply, running_wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_proxy_env")]

#: No test may take longer than this, whatever the transport does.
GUARD = 5.0


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
    transport = Transport(timeout=2, max_connections=1, scrubber=scrubber)
    try:
        async with running_wire(routes) as wire:
            with anyio.fail_after(GUARD), pytest.raises(TransportError) as raised:
                await transport.request("GET", f"{wire.url}/", headers={})
    finally:
        await transport.aclose()
    assert "s3cr3t" not in str(raised.value), str(raised.value)
