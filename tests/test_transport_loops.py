"""The transport on both event loops a run may get (asyncio's and uvloop's), plain and TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import pytest
import uvloop

from crawler.http.transport import Transport
from tests.hostile import TAG_BODY, running_hostile

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


async def fetch_all(tls: ssl.SSLContext | None) -> list[tuple[int, bytes]]:
    """Three requests one after another, then three at once, through one transport."""
    async with running_hostile(tls=tls) as server:
        transport = Transport(timeout=10, max_connections=3)
        url = server.url + "/v2/manage/namespaces/ns/repos/repo/tags/ok"
        try:
            answers = [await transport.request("GET", url, headers={}) for _ in range(3)]
            answers += await asyncio.gather(
                *(transport.request("GET", url, headers={}) for _ in range(3))
            )
        finally:
            await transport.aclose()
    return [(answer.status, answer.body) for answer in answers]


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_requests_succeed_on_either_loop(
    loop: str, scheme: str, request: pytest.FixtureRequest
) -> None:
    """Each request gets its own whole answer on asyncio's loop and on uvloop's, over plain
    TCP and over TLS (a certificate trusted through SSL_CERT_FILE)."""
    tls = request.getfixturevalue("trusted_tls") if scheme == "https" else None
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        answers = runner.run(fetch_all(tls))
    assert answers == [(200, TAG_BODY.encode())] * 6
