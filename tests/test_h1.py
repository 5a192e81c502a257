"""HTTP/1.1 bytes without a network: the request encoder and the bounded answer reader."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.http import h1
from crawler.http.h1 import (
    MAX_FIELDS,
    MAX_HEAD,
    MAX_LINE,
    AnswerReader,
    BodyTooLarge,
    ProtocolError,
    Reply,
    encode_request,
)

CAP = 1 << 20
BODY = b'{"id": 1, "tag": "t", "manifest": "{}"}'


def read(data: bytes, *, keep: tuple[str, ...] = ()) -> Reply:
    """The reply to ``data`` fed whole."""
    reply = AnswerReader(CAP, keep).feed(data)
    assert reply is not None, "the answer was not complete"
    return reply


def read_in_pieces(data: bytes, cuts: list[int]) -> Reply | None:
    reader = AnswerReader(CAP, ("retry-after",))
    reply = None
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > start:
            reply = reader.feed(data[start:cut]) or reply
            start = cut
    return reply


def chunked(body: bytes, size: int) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return (
        b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\nT: x\r\n\r\n"
    )


ANSWERS = {
    "length": b"HTTP/1.1 200 OK\r\nRetry-After: 3\r\nContent-Length: %d\r\n\r\n%s"
    % (len(BODY), BODY),
    "chunked": b"HTTP/1.1 200 OK\r\nRetry-After: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    + chunked(BODY, 7),
    "gzip": b"HTTP/1.1 200 OK\r\nRetry-After: 3\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: %d\r\n\r\n" % len(gzip.compress(BODY)) + gzip.compress(BODY),
    "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nRetry-After: 3\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
}


@pytest.mark.parametrize("kind", sorted(ANSWERS))
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_an_answer_in_any_pieces_reads_as_the_whole(kind: str, cuts: list[int]) -> None:
    """However the bytes are cut, the reply is the same: status, kept header, decoded body."""
    reply = read_in_pieces(ANSWERS[kind], cuts)
    assert reply == Reply(200, {"retry-after": "3"}, BODY, True)


def test_only_the_headers_asked_for_are_kept_and_the_first_value_wins() -> None:
    """Framing fields and unknown ones are dropped; a repeated field keeps its first value."""
    data = (
        b"HTTP/1.1 429 Too Many\r\nX-Other: 1\r\nRetry-After: 5\r\nretry-after: 9\r\n"
        b"X-Request-Id: abc\r\nContent-Length: 0\r\n\r\n"
    )
    reply = read(data, keep=("retry-after", "x-request-id"))
    assert (reply.status, reply.headers) == (429, {"retry-after": "5", "x-request-id": "abc"})


@pytest.mark.parametrize(
    ("head", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection(head: bytes, reusable: bool) -> None:
    """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when told to keep it."""
    assert read(head + b"\r\n\r\nok").reusable is reusable


def test_a_body_until_close_ends_with_the_connection_and_is_not_reused() -> None:
    """No length and no chunking: the body is whatever came before the server closed."""
    reader = AnswerReader(CAP)
    assert reader.feed(b"HTTP/1.1 200 OK\r\n\r\npart one, ") is None
    assert reader.feed(b"part two") is None
    assert reader.feed_eof() == Reply(200, {}, b"part one, part two", False)


def test_bytes_after_an_answer_make_the_connection_unusable() -> None:
    """A server that sends more than one answer's worth is not trusted with another request."""
    assert read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA").reusable is False
    assert read(b"HTTP/1.1 204 No Content\r\n\r\nEXTRA").reusable is False


@pytest.mark.parametrize("status", [204, 304])
def test_answers_without_a_body_end_at_their_head(status: int) -> None:
    """204 and 304 have no body, whatever Content-Length or Content-Encoding says."""
    assert read(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status).body == b""
    assert read(b"HTTP/1.1 %d X\r\nContent-Encoding: br\r\n\r\n" % status).body == b""


def test_several_gzip_members_and_both_deflate_forms_are_inflated() -> None:
    """gzip members one after the other, zlib-wrapped deflate and raw deflate all decode."""
    members = gzip.compress(b"a" * 10) + gzip.compress(b"b" * 10)
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    forms = {"gzip": members, "deflate": zlib.compress(b"a" * 10 + b"b" * 10)}
    forms["raw"] = raw.compress(b"a" * 10 + b"b" * 10) + raw.flush()
    for name, body in forms.items():
        coding = b"gzip" if name == "gzip" else b"deflate"
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
        assert read(head % (coding, len(body)) + body).body == b"a" * 10 + b"b" * 10, name


def test_a_body_announced_over_the_cap_is_refused_before_it_is_read() -> None:
    """Content-Length over the cap: BodyTooLarge naming the announced size."""
    with pytest.raises(BodyTooLarge) as raised:
        AnswerReader(100).feed(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n")
    assert raised.value.announced == 101


def test_a_chunk_that_would_pass_the_cap_is_refused_at_its_size_line() -> None:
    """A chunked body is held to the cap by the sizes it announces, before the data comes."""
    reader = AnswerReader(100)
    reader.feed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" + b"x" * 80 + b"\r\n"
    )
    with pytest.raises(BodyTooLarge) as raised:
        reader.feed(b"20\r\n")
    assert raised.value.announced is None


def test_a_gzip_bomb_stops_at_the_cap_without_inflating_the_rest() -> None:
    """64 MiB of zeros in ~64 KB of gzip, cap 1 MiB: refused, at most one step past the cap."""
    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)
    reader = AnswerReader(1 << 20)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    with pytest.raises(BodyTooLarge):
        reader.feed(head + bomb)
    assert reader._size <= (1 << 20) + 1


def test_an_unbounded_body_is_held_to_the_cap_as_it_arrives() -> None:
    """A body until close (no length) is refused once its bytes pass the cap."""
    reader = AnswerReader(1000)
    reader.feed(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 900)
    with pytest.raises(BodyTooLarge):
        reader.feed(b"x" * 200)


BROKEN = {
    "not http": b"SSH-2.0-OpenSSH\r\n\r\n",
    "status not a number": b"HTTP/1.1 2x0 OK\r\n\r\n",
    "status too short": b"HTTP/1.1 20 OK\r\n\r\n",
    "unknown version": b"HTTP/2.0 200 OK\r\n\r\n",
    "switching protocols": b"HTTP/1.1 101 Switching\r\n\r\n",
    "no colon": b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
    "space before colon": b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
    "folded line": b"HTTP/1.1 200 OK\r\nA: 1\r\n  folded\r\n\r\n",
    "bare LF": b"HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\r\n",
    "NUL": b"HTTP/1.1 200 OK\r\nA: 1\x002\r\n\r\n",
    "head in bare LF lines": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nab",
    "blank line after a bare LF": b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nab",
    "bare LF in the status line": b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nab",
    "length not a number": b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
    "negative length": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "gzip transfer coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b",
    "gzip, chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "chunked twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunk without CRLF": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
    "unasked encoding": b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx",
    "corrupt gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    "long line": b"HTTP/1.1 200 OK\r\nA: " + b"v" * MAX_LINE + b"\r\n\r\n",
    "too many fields": b"HTTP/1.1 200 OK\r\n" + b"A: 1\r\n" * (MAX_FIELDS + 1) + b"\r\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_answer_is_a_protocol_error(name: str) -> None:
    """Each way of breaking HTTP/1.1 raises ProtocolError, not another exception or a reply."""
    with pytest.raises(ProtocolError):
        AnswerReader(CAP).feed(BROKEN[name])


def test_a_head_that_never_ends_is_refused_at_its_bound() -> None:
    """Header bytes without the blank line: refused once they pass MAX_HEAD, not held."""
    reader = AnswerReader(CAP)
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    line = b"A: " + b"v" * 995 + b"\r\n"
    for _ in range(MAX_HEAD // len(line)):
        assert reader.feed(line) is None
    with pytest.raises(ProtocolError, match="headers are over"):
        reader.feed(line)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "without answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "in the middle"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "in the middle"),
        (b"HTTP/1.1 200 OK\r\nContent-", "in the middle"),
    ],
)
def test_a_connection_closed_before_the_answer_ends_is_a_protocol_error(
    data: bytes, message: str
) -> None:
    """The end of the connection completes only a body that runs until it."""
    reader = AnswerReader(CAP)
    reader.feed(data)
    with pytest.raises(ProtocolError, match=message):
        reader.feed_eof()


@given(st.binary(max_size=600))
def test_any_bytes_give_a_reply_or_a_protocol_error(data: bytes) -> None:
    """Fed anything, the reader answers with a Reply, None, ProtocolError or BodyTooLarge."""
    reader = AnswerReader(256)
    try:
        reader.feed(b"HTTP/1.1 200 OK\r\n" + data)
        reader.feed_eof()
    except (ProtocolError, BodyTooLarge):
        pass


def test_a_request_is_encoded_with_its_length() -> None:
    """Request line, headers in order, Content-Length for a body, then the body."""
    data = encode_request("POST", "/v3/auth/tokens", {"Host": "iam", "A": "b"}, b"{}")
    assert (
        data == b"POST /v3/auth/tokens HTTP/1.1\r\nHost: iam\r\nA: b\r\nContent-Length: 2\r\n\r\n{}"
    )


@pytest.mark.parametrize(
    "headers",
    [{"A": "b\r\nEvil: 1"}, {"A": "b\nEvil: 1"}, {"A": "b\r"}, {"Ev:il": "1"}, {"": "1"}],
)
def test_a_header_that_would_smuggle_another_is_refused(headers: dict[str, str]) -> None:
    """A line break in a value, or a name with ':' or nothing: ValueError, no bytes."""
    with pytest.raises(ValueError, match="header"):
        encode_request("GET", "/", headers, b"")


def test_a_zlib_deflate_body_whose_first_piece_is_one_byte_is_inflated() -> None:
    """deflate told zlib from raw by its first byte alone, when that is all that has come."""
    body = zlib.compress(b"x" * 100)
    reader = AnswerReader(CAP)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
    reply = reader.feed(head % len(body))
    for byte in body:
        assert reply is None
        reply = reader.feed(bytes([byte]))
    assert reply == Reply(200, {}, b"x" * 100, True)


#: Header lines as splitting a head at CRLF gives them (so never holding CRLF).
FIELD_LINES = (
    st.binary(max_size=40)
    | st.builds(
        lambda name, value: name + b":" + value, st.binary(max_size=12), st.binary(max_size=20)
    )
).filter(lambda line: b"\r\n" not in line)


@given(FIELD_LINES)
def test_the_whole_head_check_agrees_with_the_line_check(line: bytes) -> None:
    """The one-match check of all field lines accepts exactly the lines _field accepts."""
    try:
        h1._field(line)
    except ProtocolError:
        accepted = False
    else:
        accepted = True
    assert (h1._FIELD_LINES.fullmatch(b"\r\n" + line) is not None) is accepted
