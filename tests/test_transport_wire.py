"""The transport on the wire: each answer a server may send, well-formed or broken, scripted
byte for byte by tests/wire.py, and what reaches the server. Behaviour specs of
:class:`~crawler.http.transport.Transport`, whatever HTTP client it is built on: an answer
comes back exact, a broken one is a ``TransportError`` (never a hang, never another
exception), every bound holds, and the request arrives as it was given."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Mapping

import anyio
import pytest

from crawler.errors import ErrorKind, TransportError
from crawler.http.response import Answer
from crawler.http.transport import Transport
from tests.e2e_helpers import closed_port
from tests.wire import CLOSE, STALL, Received, Reply, Wire, answer, chunked, running_wire

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_proxy_env")]

#: The body cap of every transport here: small, so that going over it is quick.
CAP = 4096
#: No test may take longer than this, whatever the server does.
GUARD = 5.0


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    """A transport with a 2 s timeout, at most 4 connections and a body cap of ``CAP``."""
    async with Transport(timeout=2, max_connections=4, max_body_bytes=CAP) as transport:
        yield transport


async def get(
    transport: Transport,
    wire: Wire,
    path: str,
    headers: Mapping[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
) -> Answer:
    """``GET`` of ``path`` on the wire server, never longer than ``GUARD``."""
    with anyio.fail_after(GUARD):
        return await transport.request(
            "GET", f"{wire.url}{path}", headers=headers or {}, query=query or ()
        )


async def refused(transport: Transport, wire: Wire, path: str) -> TransportError:
    """The ``TransportError`` a ``GET`` of ``path`` raises (and no other exception)."""
    with pytest.raises(TransportError) as raised:
        await get(transport, wire, path)
    return raised.value


def head(*lines: str) -> bytes:
    """A status line and header lines, CRLF-terminated, and the blank line."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Well-formed answers -------------------------------------------------------------------


async def test_a_content_length_body_comes_back_with_the_kept_headers(transport: Transport) -> None:
    """Status, the exact body, and of the headers only the kept ones, by lower-case name."""
    headers = [
        ("Retry-After", "7"),
        ("X-Request-Id", "req-1"),
        ("Set-Cookie", "s=1"),
        ("X-Other", "o"),
    ]
    routes = {"/a": Reply.of(answer(429, b'{"e":1}', headers, reason="Too Many"))}
    async with running_wire(routes) as wire:
        got = await get(transport, wire, "/a")
    assert got == Answer(429, b'{"e":1}', {"retry-after": "7", "x-request-id": "req-1"})


async def test_a_chunked_body_with_extensions_and_trailers_is_joined(transport: Transport) -> None:
    """Several chunks, each with a chunk extension, then trailers: the body is the chunks."""
    data = chunked([b"ab", b"cde", b"f" * 300], extension=";name=value", trailers=[("X-T", "1")])
    async with running_wire({"/c": Reply.of(data)}) as wire:
        got = await get(transport, wire, "/c")
    assert (got.status, got.body) == (200, b"abcde" + b"f" * 300)


async def test_three_thousand_one_byte_chunks_are_joined(transport: Transport) -> None:
    """Chunks of one byte each, 3000 of them, in writes of 5 bytes: the body is whole."""
    data = chunked([b"y"] * 3000)
    async with running_wire({"/many": Reply.trickle(data, size=5)}) as wire:
        got = await get(transport, wire, "/many")
    assert (got.status, got.body) == (200, b"y" * 3000)


async def test_a_chunked_body_in_one_byte_writes_is_joined(transport: Transport) -> None:
    """The same chunked answer, head included, written one byte at a time."""
    data = chunked([b"ab", b"cde", b"f" * 300], extension=";x=1", trailers=[("X-T", "1")])
    async with running_wire({"/c": Reply.trickle(data, size=1)}) as wire:
        got = await get(transport, wire, "/c")
    assert (got.status, got.body) == (200, b"abcde" + b"f" * 300)


async def test_an_http_1_0_body_without_length_is_read_until_close(transport: Transport) -> None:
    """HTTP/1.0, no Content-Length: the body is everything up to the server's close."""
    data = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    async with running_wire({"/old": Reply.of(data, then="close")}) as wire:
        got = await get(transport, wire, "/old")
    assert (got.status, got.body) == (200, b"until the end")


@pytest.mark.parametrize(
    "lines",
    [
        ("HTTP/1.1 204 No Content",),
        ("HTTP/1.1 304 Not Modified",),
        ("HTTP/1.1 304 Not Modified", "Content-Length: 10"),
    ],
    ids=["204", "304", "304-with-the-length-of-what-is-not-sent"],
)
async def test_a_bodiless_status_comes_back_empty(
    transport: Transport, lines: tuple[str, ...]
) -> None:
    """A 204 or 304 is complete at its blank line, even a 304 whose Content-Length is that
    of the representation it does not send (the connection stays open: waiting for a body
    would time out)."""
    async with running_wire({"/e": Reply.of(head(*lines))}) as wire:
        got = await get(transport, wire, "/e")
    assert (got.status, got.body) == (int(lines[0].split()[1]), b"")


@pytest.mark.parametrize(
    "interim",
    [
        ("HTTP/1.1 100 Continue",),
        ("HTTP/1.1 100 Continue",) * 3,
        ("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload",),
    ],
    ids=["100", "three-100s", "103"],
)
async def test_interim_answers_are_skipped(transport: Transport, interim: tuple[str, ...]) -> None:
    """1xx answers (100 Continue, several, 103 Early Hints with a header) before the real
    one: the real answer is what comes back."""
    data = b"".join(head(line) for line in interim) + answer(200, b"real")
    async with running_wire({"/i": Reply.of(data)}) as wire:
        got = await get(transport, wire, "/i")
    assert (got.status, got.body) == (200, b"real")


async def test_header_names_are_case_blind_and_values_trimmed(transport: Transport) -> None:
    """An empty reason phrase, header names in any case, blanks and tabs around values: the
    kept headers come back by lower-case name, their values trimmed (inner blanks kept)."""
    data = (
        b"HTTP/1.1 503 \r\nretry-after:   7  \r\nX-REQUEST-ID:\tabc  d\t\r\n"
        b"content-LENGTH: 4\r\n\r\nbusy"
    )
    async with running_wire({"/h": Reply.of(data)}) as wire:
        got = await get(transport, wire, "/h")
    assert got == Answer(503, b"busy", {"retry-after": "7", "x-request-id": "abc  d"})


async def test_a_header_value_that_is_not_utf8_comes_back_as_text(transport: Transport) -> None:
    """A Location holding a Latin-1 byte (0xE9): its value is text a row can hold."""
    data = head("HTTP/1.1 302 Found", "Content-Length: 0").replace(
        b"\r\n\r\n", b"\r\nLocation: /caf\xe9\r\n\r\n"
    )
    async with running_wire({"/r": Reply.of(data)}) as wire:
        got = await get(transport, wire, "/r")
    location = got.headers["location"]
    assert location.startswith("/caf")
    assert location.encode("utf-8")  # no lone surrogate in it


async def test_a_redirect_is_returned_not_followed(transport: Transport) -> None:
    """A 302 comes back with its Location; the target it names is never asked for."""
    routes = {
        "/from": Reply.of(answer(302, b"", [("Location", "/to")], reason="Found")),
        "/to": Reply.of(answer(200, b"followed")),
    }
    async with running_wire(routes) as wire:
        got = await get(transport, wire, "/from")
    assert got == Answer(302, b"", {"location": "/to"})
    assert [r.path for r in wire.received] == ["/from"]


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
)
async def test_a_compressed_body_under_the_cap_comes_back_decompressed(
    transport: Transport, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    """Content-Encoding gzip or deflate (zlib): the body comes back inflated."""
    plain = b'{"tag":"t"}' * 300  # 3300 bytes: under CAP once inflated
    data = answer(200, compress(plain), [("Content-Encoding", encoding)])
    async with running_wire({"/z": Reply.of(data)}) as wire:
        got = await get(transport, wire, "/z")
    assert (got.status, got.body) == (200, plain)


# Keep-alive ----------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(transport: Transport) -> None:
    """Ten requests one after the other: one connection accepted, ten requests on it."""
    async with running_wire({"/k": Reply.of(answer(200, b"k"))}) as wire:
        bodies = [(await get(transport, wire, "/k")).body for _ in range(10)]
    assert bodies == [b"k"] * 10
    assert (wire.accepted, {r.connection for r in wire.received}) == (1, {0})


async def test_each_server_keeps_its_own_connection(transport: Transport) -> None:
    """Requests alternating between two servers: each server sees one connection, and
    every answer comes from the server asked."""
    async with (
        running_wire({"/w": Reply.of(answer(200, b"one"))}) as one,
        running_wire({"/w": Reply.of(answer(200, b"two"))}) as two,
    ):
        bodies = [(await get(transport, server, "/w")).body for server in (one, two) * 3]
    assert bodies == [b"one", b"two"] * 3
    assert (one.accepted, two.accepted) == (1, 1)


async def test_connection_close_in_an_answer_opens_a_new_connection(transport: Transport) -> None:
    """After an answer with Connection: close (and the close), the next request succeeds
    on a second connection."""
    routes = {
        "/bye": Reply.of(answer(200, b"bye", [("Connection", "close")]), then="close"),
        "/k": Reply.of(answer(200, b"k")),
    }
    async with running_wire(routes) as wire:
        first = await get(transport, wire, "/bye")
        second = await get(transport, wire, "/k")
    assert (first.body, second.body) == (b"bye", b"k")
    assert [r.connection for r in wire.received] == [0, 1]


async def test_a_keep_alive_closed_right_after_its_answer_fails_the_next_request_once(
    transport: Transport,
) -> None:
    """The server closes right after an answer that said nothing of closing: the next
    request, sent before that close is seen, is kind network (never silently resent), and
    the one after it succeeds on a new connection."""
    routes = {"/q": Reply.of(answer(200, b"q"), then="close")}
    async with running_wire(routes) as wire:
        first = await get(transport, wire, "/q")
        lost = await refused(transport, wire, "/q")
        third = await get(transport, wire, "/q")
    assert (first.body, lost.kind, third.body) == (b"q", ErrorKind.NETWORK, b"q")
    assert (wire.accepted, [r.connection for r in wire.received]) == (2, [0, 1])


async def test_a_kept_connection_closed_on_the_next_request_is_not_resent(
    transport: Transport,
) -> None:
    """The server reads a second request on a kept connection and closes without answering:
    kind network, and the request is not sent again on a new connection."""

    def script(request: Received) -> Reply:
        first_on_connection = sum(r.connection == request.connection for r in wire.received) == 1
        return Reply.of(answer(200, b"k")) if first_on_connection else CLOSE

    async with running_wire(script=script) as wire:
        first = await get(transport, wire, "/k")
        lost = await refused(transport, wire, "/k")
        accepted_then = wire.accepted
        third = await get(transport, wire, "/k")
    assert (first.body, lost.kind, third.body) == (b"k", ErrorKind.NETWORK, b"k")
    assert accepted_then == 1
    assert [r.connection for r in wire.received] == [0, 0, 1]


async def test_an_http_1_0_answer_leaves_its_connection_unused(transport: Transport) -> None:
    """HTTP/1.0 with a Content-Length and no keep-alive, the server closing after it: every
    request of three succeeds, each on a new connection (none is sent on a closed one)."""
    data = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with running_wire({"/old": Reply.of(data, then="close")}) as wire:
        bodies = [(await get(transport, wire, "/old")).body for _ in range(3)]
    assert bodies == [b"ok"] * 3
    assert [r.connection for r in wire.received] == [0, 1, 2]


async def test_concurrent_requests_stay_within_max_connections() -> None:
    """Eight requests at once on a transport of two connections: the server answers none
    until it holds two, and never sees a third connection; every answer is the right one."""
    transport = Transport(timeout=GUARD, max_connections=2, max_body_bytes=CAP)
    both_in = asyncio.Event()

    def script(request: Received) -> Reply:
        if len(wire.received) == 2:
            both_in.set()
        return Reply((answer(200, request.target.encode()),), gate=both_in)

    bodies: dict[int, bytes] = {}

    async def fetch(i: int) -> None:
        bodies[i] = (await get(transport, wire, f"/n{i}")).body

    try:
        async with running_wire(script=script) as wire, anyio.create_task_group() as group:
            for i in range(8):
                group.start_soon(fetch, i)
    finally:
        await transport.aclose()
    assert bodies == {i: f"/n{i}".encode() for i in range(8)}
    assert wire.accepted == 2


# Broken answers ------------------------------------------------------------------------


CHUNKED = head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked")


def sized(size: bytes) -> bytes:
    """A chunked 200 whose one chunk of ``abcde`` is sized by ``size``, and the last chunk."""
    return CHUNKED + size + b"\r\nabcde\r\n0\r\n\r\n"


BROKEN = {
    "garbage-status-line": Reply.of(b"SPAM SPAM SPAM\r\n\r\n"),
    "non-numeric-status": Reply.of(head("HTTP/1.1 2x0 OK", "Content-Length: 0")),
    "no-blank-line-then-close": Reply.of(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "close"),
    "close-without-answering": CLOSE,
    "length-not-a-number": Reply.of(head("HTTP/1.1 200 OK", "Content-Length: abc") + b"ab"),
    "length-negative": Reply.of(head("HTTP/1.1 200 OK", "Content-Length: -1") + b"ab"),
    "length-conflicting": Reply.of(
        head("HTTP/1.1 200 OK", "Content-Length: 2", "Content-Length: 3") + b"abc"
    ),
    "length-list": Reply.of(head("HTTP/1.1 200 OK", "Content-Length: 2, 3") + b"abc"),
    "length-and-chunked": Reply.of(
        head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 5")
        + b"2\r\nab\r\n0\r\n\r\n"
    ),
    "body-short-then-close": Reply.of(
        head("HTTP/1.1 200 OK", "Content-Length: 10") + b"abc", "close"
    ),
    "bad-chunk-size": Reply.of(CHUNKED + b"zz\r\nab\r\n0\r\n\r\n"),
    "chunked-cut-before-last-chunk": Reply.of(CHUNKED + b"2\r\nab\r\n", "close"),
    "status-line-over-8-kib": Reply.of(head("HTTP/1.1 200 " + "R" * 9000, "Content-Length: 0")),
    "header-line-over-8-kib": Reply.of(
        head("HTTP/1.1 200 OK", "X-Long: " + "a" * 9000, "Content-Length: 0")
    ),
    "header-section-of-many-short-lines": Reply.of(  # 1000 lines, 100 KiB
        head("HTTP/1.1 200 OK", *(f"X-H{i}: {'v' * 95}" for i in range(1000)), "Content-Length: 0")
    ),
    "header-section-over-1-mib": Reply.of(  # 140 legal lines of 8000 bytes
        head("HTTP/1.1 200 OK", *(f"X-H{i}: {'v' * 8000}" for i in range(140)), "Content-Length: 0")
    ),
    "header-without-colon": Reply.of(head("HTTP/1.1 200 OK", "NoColonHere", "Content-Length: 0")),
    "nul-in-header-value": Reply.of(head("HTTP/1.1 200 OK", "X-A: a\0b", "Content-Length: 0")),
    "bare-cr-in-header-value": Reply.of(head("HTTP/1.1 200 OK", "X-A: a\rb", "Content-Length: 0")),
    "status-over-three-digits": Reply.of(head("HTTP/1.1 1000 Odd", "Content-Length: 0")),
    "gzip-that-does-not-inflate": Reply.of(
        answer(200, b"not gzip at all", [("Content-Encoding", "gzip")])
    ),
    # What Python's int() would take but HTTP's 1*DIGIT / 1*HEXDIG does not.
    "length-with-underscore": Reply.of(head("HTTP/1.1 200 OK", "Content-Length: 1_0") + b"x" * 10),
    "length-with-plus": Reply.of(head("HTTP/1.1 200 OK", "Content-Length: +10") + b"x" * 10),
    "length-in-hex": Reply.of(head("HTTP/1.1 200 OK", "Content-Length: 0xa") + b"x" * 10),
    "length-in-fullwidth-digits": Reply.of(
        "HTTP/1.1 200 OK\r\nContent-Length: \uff11\uff10\r\n\r\n".encode() + b"x" * 10
    ),
    "length-with-inner-space": Reply.of(head("HTTP/1.1 200 OK", "Content-Length: 1 0") + b"x" * 10),
    "length-empty-then-close": Reply.of(
        head("HTTP/1.1 200 OK", "Content-Length: ") + b"x", "close"
    ),
    "chunk-size-0x": Reply.of(sized(b"0x5")),
    "chunk-size-plus": Reply.of(sized(b"+5")),
    "chunk-size-minus": Reply.of(sized(b"-5")),
    "chunk-size-underscore": Reply.of(sized(b"0_5")),
    "chunk-size-leading-space": Reply.of(sized(b" 5")),
    "chunk-data-longer-than-its-size": Reply.of(CHUNKED + b"5\r\nabcdeXX\r\n0\r\n\r\n"),
    "chunk-lines-ending-in-bare-lf": Reply.of(CHUNKED + b"5\nabcde\n0\n\n"),
    "trailer-without-colon": Reply.of(CHUNKED + b"5\r\nabcde\r\n0\r\nbad\r\n\r\n"),
    "trailer-line-over-8-kib": Reply.of(chunked([b"abcde"], trailers=[("X-T", "a" * 9000)])),
    "status-with-plus": Reply.of(head("HTTP/1.1 +200 OK", "Content-Length: 0")),
    "status-of-two-digits": Reply.of(head("HTTP/1.1 20 OK", "Content-Length: 0")),
    "status-with-underscore": Reply.of(head("HTTP/1.1 2_0 OK", "Content-Length: 0")),
    "status-in-fullwidth-digits": Reply.of(
        "HTTP/1.1 \uff12\uff10\uff10 OK\r\nContent-Length: 0\r\n\r\n".encode()
    ),
    "version-not-numeric": Reply.of(head("HTTP/x.y 200 OK", "Content-Length: 0")),
    "version-lower-case": Reply.of(head("http/1.1 200 OK", "Content-Length: 0")),
    "version-3": Reply.of(head("HTTP/3.0 200 OK", "Content-Length: 0")),
    "header-name-with-space": Reply.of(head("HTTP/1.1 200 OK", "Bad Name: x", "Content-Length: 0")),
    "header-name-empty": Reply.of(head("HTTP/1.1 200 OK", ": x", "Content-Length: 0")),
}


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (sized(b"5"), b"abcde"),
        (sized(b"05;ext=1"), b"abcde"),
        (head("HTTP/1.1 200 OK", "Content-Length: 010") + b"x" * 10, b"x" * 10),
    ],
    ids=["chunk-size", "chunk-size-zero-led-extended", "content-length-zero-led"],
)
async def test_the_broken_cases_framing_is_sound_when_valid(
    transport: Transport, data: bytes, body: bytes
) -> None:
    """The framing the broken cases spoil, with a valid size or length: the body comes back
    (so each refusal is the spoilt part's doing)."""
    async with running_wire({"/ok": Reply.of(data)}) as wire:
        got = await get(transport, wire, "/ok")
    assert (got.status, got.body) == (200, body)


@pytest.mark.parametrize(
    "data",
    [
        head("HTTP/1.1 200 OK", f"Content-Length: {10**26}"),
        CHUNKED + b"f" * 20 + b"\r\nab",
    ],
    ids=["content-length", "chunk-size"],
)
async def test_a_length_past_64_bits_is_refused(transport: Transport, data: bytes) -> None:
    """A Content-Length or chunk size too big for 64 bits, then silence: refused at once,
    as network (not a number it can hold) or too_large (over the cap), never a wait."""
    async with running_wire({"/huge": Reply.of(data, then="stall")}) as wire:
        error = await refused(transport, wire, "/huge")
    assert error.kind in (ErrorKind.NETWORK, ErrorKind.TOO_LARGE)


@pytest.mark.parametrize("case", BROKEN)
async def test_a_broken_answer_is_a_network_error(transport: Transport, case: str) -> None:
    """Each malformed answer is a TransportError of kind network, at once (not a timeout)."""
    async with running_wire({f"/{case}": BROKEN[case]}) as wire:
        error = await refused(transport, wire, f"/{case}")
    assert error.kind is ErrorKind.NETWORK, error.message
    assert "\n" not in error.message


async def test_the_transport_works_on_after_a_broken_answer(transport: Transport) -> None:
    """A garbage answer on one connection leaves the next request a clean new connection."""
    routes = {"/bad": BROKEN["garbage-status-line"], "/k": Reply.of(answer(200, b"k"))}
    async with running_wire(routes) as wire:
        await refused(transport, wire, "/bad")
        got = await get(transport, wire, "/k")
    assert got.body == b"k"
    assert [r.connection for r in wire.received] == [0, 1]


@pytest.mark.parametrize(
    ("first", "status"),
    [
        (answer(200, b"a") + answer(200, b"smuggled"), 200),
        (answer(200, b"a") + b"EXTRA", 200),
        (head("HTTP/1.1 304 Not Modified", "Content-Length: 10") + answer(200, b"smuggled"), 304),
        (head("HTTP/1.1 204 No Content") + answer(200, b"smuggled"), 204),
    ],
    ids=["a-second-answer", "garbage", "a-304-with-a-body", "a-204-with-a-body"],
)
async def test_bytes_past_an_answer_never_reach_the_next_request(first: bytes, status: int) -> None:
    """An answer followed at once by more bytes (a whole second answer, garbage, a body a
    304 or 204 cannot have): it comes back alone, and the next request on a one-connection
    transport gets its own answer, never those bytes."""
    transport = Transport(timeout=GUARD, max_connections=1, max_body_bytes=CAP)
    routes = {"/a": Reply.of(first), "/b": Reply.of(answer(200, b"b"))}
    try:
        async with running_wire(routes) as wire:
            got = await get(transport, wire, "/a")
            after = await get(transport, wire, "/b")
    finally:
        await transport.aclose()
    assert (got.status, got.body) == (status, b"a" if status == 200 else b"")
    assert (after.status, after.body) == (200, b"b")


async def test_an_answer_in_bare_lf_lines_is_never_left_to_time_out() -> None:
    """Status line and headers ending in bare LF, the connection kept open: read (as a
    recipient may) or refused at once as network, not waited on until the timeout."""
    transport = Transport(timeout=0.5, max_connections=1, max_body_bytes=CAP)
    data = b"HTTP/1.1 200 OK\nContent-Length: 2\n\nab"
    try:
        async with running_wire({"/lf": Reply.of(data)}) as wire:
            with anyio.fail_after(GUARD):
                outcome: Answer | ErrorKind = await transport.request(
                    "GET", f"{wire.url}/lf", headers={}
                )
    except TransportError as exc:
        outcome = exc.kind
    finally:
        await transport.aclose()
    assert outcome in (Answer(200, b"ab"), ErrorKind.NETWORK), outcome


# Bounds --------------------------------------------------------------------------------


def framed(framing: str, body: bytes) -> Reply:
    """``body`` in a 200 framed as ``framing`` says."""
    gzipped = [("Content-Encoding", "gzip")]
    if framing == "content-length":
        return Reply.of(answer(200, body))
    if framing == "chunked":
        return Reply.of(chunked([body[:1000], body[1000:]]))
    if framing == "chunked-in-7-byte-writes":
        return Reply.trickle(chunked([body[:1000], body[1000:]]), size=7)
    if framing == "gzip":
        return Reply.of(answer(200, gzip.compress(body), gzipped))
    if framing == "gzip-in-3-byte-writes":
        return Reply.trickle(answer(200, gzip.compress(body), gzipped), size=3)
    assert framing == "gzip-chunked"
    packed = gzip.compress(body)
    return Reply.of(chunked([packed[:10], packed[10:]], gzipped))


FRAMINGS = [
    "content-length",
    "chunked",
    "chunked-in-7-byte-writes",
    "gzip",
    "gzip-in-3-byte-writes",
    "gzip-chunked",
]


def sized_body(size: int) -> bytes:
    """``size`` bytes that compress a little, not to nothing."""
    return bytes(range(256)) * (size // 256) + b"z" * (size % 256)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_a_body_of_exactly_the_cap_comes_back_whole(
    transport: Transport, framing: str
) -> None:
    """A body of exactly the cap (once inflated), however framed: it comes back whole."""
    body = sized_body(CAP)
    async with running_wire({"/cap": framed(framing, body)}) as wire:
        got = await get(transport, wire, "/cap")
    assert (got.status, got.body) == (200, body)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_a_body_one_byte_over_the_cap_is_too_large(
    transport: Transport, framing: str
) -> None:
    """One byte more than the cap, announced, counted on the wire or inflated: too_large."""
    async with running_wire({"/cap": framed(framing, sized_body(CAP + 1))}) as wire:
        error = await refused(transport, wire, "/cap")
    assert error.kind is ErrorKind.TOO_LARGE


async def test_an_announced_length_over_the_cap_is_too_large(transport: Transport) -> None:
    """Content-Length over the cap is refused from the headers alone (no body ever comes)."""
    data = head("HTTP/1.1 200 OK", f"Content-Length: {CAP + 1}")
    async with running_wire({"/big": Reply.of(data, then="stall")}) as wire:
        error = await refused(transport, wire, "/big")
    assert error.kind is ErrorKind.TOO_LARGE
    assert f"--max-body-bytes ({CAP}" in error.message


@pytest.mark.parametrize("ending", ["last-chunk", "silence"])
async def test_a_chunked_stream_over_the_cap_is_too_large(
    transport: Transport, ending: str
) -> None:
    """Chunks adding up to more than the cap, then the last chunk or silence (the rest is
    not waited for): too_large."""
    data = chunked([b"x" * 1000] * 5)
    reply = Reply.of(data) if ending == "last-chunk" else Reply.of(data[:-5], then="stall")
    async with running_wire({"/s": reply}) as wire:
        error = await refused(transport, wire, "/s")
    assert error.kind is ErrorKind.TOO_LARGE
    assert f"--max-body-bytes ({CAP} bytes)" in error.message


async def test_a_gzip_body_inflating_over_the_cap_is_too_large(transport: Transport) -> None:
    """1 MiB of zeros as gzip (about 1 KiB on the wire, under the cap) inflates over it."""
    bomb = gzip.compress(bytes(1 << 20))
    assert len(bomb) < CAP
    data = answer(200, bomb, [("Content-Encoding", "gzip")])
    async with running_wire({"/bomb": Reply.of(data)}) as wire:
        error = await refused(transport, wire, "/bomb")
    assert error.kind is ErrorKind.TOO_LARGE


async def short_timeout_error(reply: Reply) -> TransportError:
    """The error of a ``GET`` answered with ``reply``, on a transport timing out at 0.3 s."""
    async with (
        Transport(timeout=0.3, max_connections=1, max_body_bytes=CAP) as transport,
        running_wire({"/slow": reply}) as wire,
    ):
        return await refused(transport, wire, "/slow")


async def test_an_answer_stalling_after_its_headers_times_out() -> None:
    """Headers, then nothing: kind timeout after the transport's timeout (0.3 s here)."""
    error = await short_timeout_error(
        Reply.of(head("HTTP/1.1 200 OK", "Content-Length: 10"), "stall")
    )
    assert error.kind is ErrorKind.TIMEOUT
    assert error.message == "no answer within the timeout of 0.3 s"


async def test_a_slow_trickle_times_out_on_the_whole_exchange() -> None:
    """An answer that keeps coming, a byte every 20 ms (for 4 s): the timeout of 0.3 s is
    for the whole exchange, not for each read, so it is kind timeout."""
    data = head("HTTP/1.1 200 OK", "Content-Length: 200") + b"x" * 200
    error = await short_timeout_error(dataclasses.replace(Reply.trickle(data), pace=0.02))
    assert error.kind is ErrorKind.TIMEOUT


async def test_a_server_that_never_answers_times_out() -> None:
    """No byte of an answer at all: kind timeout too."""
    error = await short_timeout_error(STALL)
    assert error.kind is ErrorKind.TIMEOUT


async def test_a_refused_connection_is_a_network_error(transport: Transport) -> None:
    """Nobody listening on the port: kind network, at once."""
    with pytest.raises(TransportError) as raised, anyio.fail_after(GUARD):
        await transport.request("GET", f"http://127.0.0.1:{closed_port()}/x", headers={})
    assert raised.value.kind is ErrorKind.NETWORK


@pytest.mark.parametrize("failure", ["timed-out", "too-large"])
async def test_a_failed_answer_leaves_its_connection_unused(failure: str) -> None:
    """A request that timed out (its answer sent late) or was too large (its body left
    unread), on a one-connection transport: the next request gets its own answer."""
    transport = Transport(timeout=0.5, max_connections=1, max_body_bytes=CAP)
    late = asyncio.Event()
    if failure == "timed-out":
        first = Reply((answer(200, b"late"),), gate=late)
    else:
        first = Reply.of(answer(200, b"x" * (CAP + 1)))
    routes = {"/first": first, "/b": Reply.of(answer(200, b"b"))}
    try:
        async with running_wire(routes) as wire:
            error = await refused(transport, wire, "/first")
            late.set()  # a late answer now goes out on the first connection
            got = await get(transport, wire, "/b")
    finally:
        await transport.aclose()
    expected = ErrorKind.TIMEOUT if failure == "timed-out" else ErrorKind.TOO_LARGE
    assert error.kind is expected
    assert (got.status, got.body) == (200, b"b")


# TLS -----------------------------------------------------------------------------------


async def test_https_requests_share_one_tls_connection(
    transport: Transport, trusted_tls: ssl.SSLContext
) -> None:
    """Three https requests, a chunked answer among them: all answered, on one connection."""
    routes = {"/a": Reply.of(answer(200, b"a")), "/c": Reply.of(chunked([b"c1", b"c2"]))}
    async with running_wire(routes, tls=trusted_tls) as wire:
        bodies = [(await get(transport, wire, path)).body for path in ("/a", "/c", "/a")]
    assert bodies == [b"a", b"c1c2", b"a"]
    assert wire.accepted == 1


@pytest.mark.parametrize(
    "greeting",
    [Reply.of(answer(400, reason="Bad Request"), then="close"), CLOSE],
    ids=["plain-http-answer", "close"],
)
async def test_a_tls_handshake_the_server_breaks_is_a_network_error(
    transport: Transport, greeting: Reply
) -> None:
    """https to a server that answers the handshake in plain HTTP, or hangs up: kind network
    (not tls, which is kept for a certificate that does not verify and stops the run)."""
    async with running_wire(on_accept=greeting) as wire:
        with pytest.raises(TransportError) as raised, anyio.fail_after(GUARD):
            await transport.request("GET", wire.url.replace("http:", "https:"), headers={})
    assert raised.value.kind is ErrorKind.NETWORK


async def test_a_tls_handshake_the_server_never_finishes_times_out() -> None:
    """https to a server that accepts and then says nothing: kind timeout, the handshake
    being part of the exchange the timeout bounds."""
    async with (
        Transport(timeout=0.3, max_connections=1, max_body_bytes=CAP) as transport,
        running_wire(on_accept=STALL) as wire,
    ):
        with pytest.raises(TransportError) as raised, anyio.fail_after(GUARD):
            await transport.request("GET", wire.url.replace("http:", "https:"), headers={})
    assert raised.value.kind is ErrorKind.TIMEOUT


# The request on the wire ---------------------------------------------------------------

#: Query values a server must get back exactly (parse_qsl decodes them).
QUERY = [
    ("space", "a b"),
    ("amp", "x&y"),
    ("eq", "k=v"),
    ("pct", "50%"),
    ("slash", "a/b"),
    ("plus", "1+1"),
    ("star", "*"),
    ("accents", "é☃"),
    ("clé", "key too"),
    ("empty", ""),
    ("repeated", "1"),
    ("repeated", "2"),
]


async def test_the_request_line_host_and_headers_are_sent_as_given(transport: Transport) -> None:
    """``GET path?query HTTP/1.1``, Host host:port, each given header exactly once and no
    header twice, no Cookie; the query arrives decoded back to exactly what was given."""
    given = {"X-Auth-Token": "tok", "User-Agent": "swr-crawler/test", "Accept": "application/json"}
    async with running_wire({"/v2/p": Reply.of(answer(200))}) as wire:
        await get(transport, wire, "/v2/p", headers=given, query=QUERY)
    (request,) = wire.received
    path, _, query = request.target.partition("?")
    assert (request.method, path, request.version) == ("GET", "/v2/p", "HTTP/1.1")
    assert request.query == QUERY, query
    assert request.values("Host") == [wire.url.removeprefix("http://")]
    for name, value in given.items():
        assert request.values(name) == [value], name
    names = [name.lower() for name, _ in request.headers]
    assert len(names) == len(set(names)), names
    assert request.values("Cookie") == []


async def test_an_encoded_path_is_sent_as_it_is(transport: Transport) -> None:
    """A path already percent-encoded (``%2F``, ``%7E``) reaches the server unchanged."""
    async with running_wire(script=lambda r: Reply.of(answer(200))) as wire:
        await get(transport, wire, "/v2/a%2Fb/%7Euser")
    assert [r.target for r in wire.received] == ["/v2/a%2Fb/%7Euser"]


async def test_a_post_body_arrives_byte_exact(transport: Transport) -> None:
    """The body (NUL and non-UTF-8 bytes included) with a Content-Length that matches."""
    body = b'{"auth": "\xc3\xa9"}\x00\xff\r\n\r\n'
    async with running_wire({"/v3/auth/tokens": Reply.of(answer(201, b"{}"))}) as wire:
        with anyio.fail_after(GUARD):
            got = await transport.request(
                "POST",
                f"{wire.url}/v3/auth/tokens",
                headers={"Content-Type": "application/json"},
                body=body,
            )
    (request,) = wire.received
    assert got.status == 201
    assert (request.method, request.body) == ("POST", body)
    assert request.values("Content-Length") == [str(len(body))]
    assert request.values("Content-Type") == ["application/json"]


async def test_a_set_cookie_is_never_sent_back(transport: Transport) -> None:
    """An answer's Set-Cookie (from a named host, as a gateway's would be) gives the next
    request no Cookie header."""
    routes = {
        "/set": Reply.of(answer(200, b"", [("Set-Cookie", "sid=abc; Path=/")])),
        "/next": Reply.of(answer(200)),
    }
    async with running_wire(routes) as wire:
        named = wire.url.replace("127.0.0.1", "localhost")
        for path in ("/set", "/next"):
            with anyio.fail_after(GUARD):
                await transport.request("GET", f"{named}{path}", headers={})
    assert [r.path for r in wire.received] == ["/set", "/next"]
    assert wire.received[1].values("Cookie") == []


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nX-Injected: 1", "a\rX-Injected: 1"])
async def test_a_header_value_with_cr_or_lf_is_refused_unsent(
    transport: Transport, value: str
) -> None:
    """A CR or LF in a header value: TransportError of kind network (not a ValueError),
    and no request reaches the server."""
    async with running_wire({"/x": Reply.of(answer(200))}) as wire:
        with pytest.raises(TransportError) as raised, anyio.fail_after(GUARD):
            await transport.request("GET", f"{wire.url}/x", headers={"X-Auth-Token": value})
    assert raised.value.kind is ErrorKind.NETWORK
    assert wire.received == []


# Cancellation --------------------------------------------------------------------------


LATE_HEAD = head("HTTP/1.1 200 OK", "Content-Length: 4")


@pytest.mark.parametrize(
    "slow",
    [
        Reply((LATE_HEAD + b"late",), gate_before=0),
        Reply((LATE_HEAD + b"la", b"te"), gate_before=1),
    ],
    ids=["before-the-head", "inside-the-body"],
)
async def test_a_cancelled_request_leaves_the_transport_usable(slow: Reply) -> None:
    """A request cancelled while it waits (for the answer's head, or inside its body), on a
    transport of one connection: the next request succeeds (the slot was given back) and
    gets its own answer, not the late rest of the first's."""
    transport = Transport(timeout=GUARD, max_connections=1, max_body_bytes=CAP)
    late = asyncio.Event()
    waiting = anyio.CancelScope()

    def script(request: Received) -> Reply:
        if request.path == "/fast":
            return Reply.of(answer(200, b"fast"))
        waiting.deadline = anyio.current_time() + 0.1  # cancelled 0.1 s after it arrived
        return dataclasses.replace(slow, gate=late)

    try:
        async with running_wire(script=script) as wire:
            with waiting:
                await transport.request("GET", f"{wire.url}/slow", headers={})
            assert waiting.cancelled_caught
            late.set()  # the server now sends the rest of the first answer
            got = await get(transport, wire, "/fast")
    finally:
        await transport.aclose()
    assert (got.status, got.body) == (200, b"fast")
    assert [r.path for r in wire.received] == ["/slow", "/fast"]


async def test_leaving_async_with_closes_the_transport() -> None:
    """``async with Transport(...)`` closes it on the way out: no request is taken after."""
    async with running_wire({"/a": Reply.of(answer(200, b"a"))}) as wire:
        async with Transport(timeout=GUARD, max_connections=1) as transport:
            assert (await get(transport, wire, "/a")).body == b"a"
        assert transport.closed
        with pytest.raises(RuntimeError, match="closed"):
            await transport.request("GET", f"{wire.url}/a", headers={})
