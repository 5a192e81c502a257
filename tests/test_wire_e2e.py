"""End to end over tests/wire.py. Proxies: an https endpoint reached through a ``CONNECT``
tunnel with Basic credentials, a plain http one in absolute form, and a proxy that
refuses the credentials; the proxy sees what it should and its password reaches no row,
log event or run.json; and TLS inside TLS through an https proxy. And answers whose
bytes must not break a row."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest

from crawler.http.transport import Transport
from tests.e2e_helpers import crawl
from tests.test_hostile import artefacts, assert_absent, crawl_logged
from tests.wire import Received, Reply, answer, basic, running_proxy, running_wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_proxy_env")]

USER = "crawler"
#: A password that must be percent-encoded in the proxy URL: @, space, / and %. (ASCII:
#: Basic credentials have no agreed encoding beyond it.)
PASSWORD = "pr0xy S3cret/w@rd%41"
TAGS = ["ns/repo:t1", "ns/repo:t2"]
TAG = Reply.of(answer(200, b'{"id": 1, "tag": "t"}', [("Content-Type", "application/json")]))


def proxy_url(proxy: str, password: str) -> str:
    """``proxy`` with ``USER`` and ``password`` in it, percent-encoded as a URL needs."""
    return proxy.replace("://", f"://{USER}:{quote(password, safe='')}@", 1)


async def test_an_https_endpoint_through_a_connect_proxy_with_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted_tls: ssl.SSLContext
) -> None:
    """HTTPS_PROXY=http://user:pass@proxy: every request goes through a CONNECT to the
    endpoint's host:port carrying the decoded credentials; the endpoint (TLS verified)
    gets the requests without them; the password is nowhere in the output."""
    credentials = (USER, PASSWORD)
    async with (
        running_wire(script=lambda r: TAG, tls=trusted_tls) as server,
        running_proxy(credentials) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy_url(proxy.url, PASSWORD))
        out = tmp_path / "out"
        outcome, events = await crawl_logged(server.url, TAGS, out)
    assert outcome.errors.num_rows == 0, outcome.errors.column("error_msg").to_pylist()
    assert outcome.tags.num_rows == len(TAGS)
    endpoint = server.url.removeprefix("https://")
    assert proxy.seen, "the proxy carried the crawl"
    assert {(r.method, r.target) for r in proxy.seen} == {("CONNECT", endpoint)}
    assert all(r.values("Proxy-Authorization") == [basic(*credentials)] for r in proxy.seen)
    assert sorted(r.path for r in server.received) == [
        f"/v2/manage/namespaces/ns/repos/repo/tags/{t}" for t in ("t1", "t2")
    ]
    assert all(r.values("Proxy-Authorization") == [] for r in server.received)
    secrets = [PASSWORD, basic(*credentials).removeprefix("Basic ")]
    for where, texts in artefacts(outcome, out, events).items():
        assert_absent(secrets, where, texts)


async def test_a_proxy_refusing_the_credentials_gives_network_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted_tls: ssl.SSLContext
) -> None:
    """A 407 to every CONNECT: each target is an error row of kind network, after its
    attempts; the endpoint is never reached and the password given leaks nowhere."""
    async with (
        running_wire(script=lambda r: TAG, tls=trusted_tls) as server,
        running_proxy((USER, "the right one")) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy_url(proxy.url, PASSWORD))
        out = tmp_path / "out"
        outcome, events = await crawl_logged(server.url, TAGS, out, max_attempts=2)
    rows = outcome.errors.to_pylist()
    assert sorted((r["tag"], r["error_kind"], r["attempts"]) for r in rows) == [
        ("t1", "network", 2),
        ("t2", "network", 2),
    ]
    assert outcome.tags.num_rows == 0
    assert (server.accepted, len(proxy.seen)) == (0, 2 * len(TAGS))
    assert {r.method for r in proxy.seen} == {"CONNECT"}
    secrets = [PASSWORD, basic(USER, PASSWORD).removeprefix("Basic ")]
    for where, texts in artefacts(outcome, out, events).items():
        assert_absent(secrets, where, texts)


async def test_a_plain_http_endpoint_through_the_proxy_is_asked_in_absolute_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY with credentials: the proxy gets ``GET http://host:port/path?query`` with
    them; the endpoint gets the request (query intact) without them."""
    async with (
        running_wire({"/v2/p": Reply.of(answer(200, b"via proxy"))}) as server,
        running_proxy((USER, PASSWORD)) as proxy,
    ):
        monkeypatch.setenv("HTTP_PROXY", proxy_url(proxy.url, PASSWORD))
        async with Transport(timeout=2, max_connections=2) as transport:
            with anyio.fail_after(5):
                got = await transport.request(
                    "GET", f"{server.url}/v2/p", headers={}, query=[("q", "a b")]
                )
    assert (got.status, got.body) == (200, b"via proxy")
    ((method, target, query, credentials),) = [
        (r.method, r.target, r.query, r.values("Proxy-Authorization")) for r in proxy.seen
    ]
    assert (method, target.partition("?")[0], query) == (
        "GET",
        f"{server.url}/v2/p",
        [("q", "a b")],
    )
    assert credentials == [basic(USER, PASSWORD)]
    ((path, query, forwarded),) = [
        (r.path, r.query, r.values("Proxy-Authorization")) for r in server.received
    ]
    assert (path, query, forwarded) == ("/v2/p", [("q", "a b")], [])


async def test_a_redirect_to_a_latin1_location_is_an_error_row(tmp_path: Path) -> None:
    """A 302 whose Location holds a byte that is not UTF-8: an unexpected_status row, the
    rest of the crawl carries on, and the run ends as any other with an error row."""
    redirect = Reply.of(b"HTTP/1.1 302 Found\r\nLocation: /caf\xe9\r\nContent-Length: 0\r\n\r\n")

    def script(request: Received) -> Reply:
        return redirect if request.path.endswith("/t1") else TAG

    async with running_wire(script=script) as server:
        outcome = await crawl(server.url, TAGS, tmp_path / "out", max_attempts=1)
    assert outcome.result.report.stop_reason is None
    assert [(r["tag"], r["error_kind"]) for r in outcome.errors.to_pylist()] == [
        ("t1", "unexpected_status")
    ]
    assert outcome.tags.num_rows == 1


async def test_an_https_endpoint_through_an_https_proxy_is_tls_inside_tls(
    monkeypatch: pytest.MonkeyPatch, trusted_tls: ssl.SSLContext
) -> None:
    """HTTPS_PROXY=https://user:pass@proxy: TLS to the proxy, TLS to the endpoint inside
    the tunnel; two requests share one CONNECT, which alone carries the credentials."""
    async with (
        running_wire({"/v2/p": Reply.of(answer(200, b"inner"))}, tls=trusted_tls) as server,
        running_proxy((USER, PASSWORD), tls=trusted_tls) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy_url(proxy.url, PASSWORD))
        async with Transport(timeout=2, max_connections=2) as transport:
            with anyio.fail_after(5):
                bodies = [
                    (await transport.request("GET", f"{server.url}/v2/p", headers={})).body
                    for _ in range(2)
                ]
    assert bodies == [b"inner", b"inner"]
    ((method, target, credentials),) = [
        (r.method, r.target, r.values("Proxy-Authorization")) for r in proxy.seen
    ]
    assert (method, target) == ("CONNECT", server.url.removeprefix("https://"))
    assert credentials == [basic(USER, PASSWORD)]
    assert [r.values("Proxy-Authorization") for r in server.received] == [[], []]
