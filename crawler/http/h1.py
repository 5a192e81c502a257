"""HTTP/1.1 as bytes, with no I/O: the request the transport sends, and a bounded reader of answers.

:func:`encode_request` turns a method, a request target and headers into the bytes of one
request (``Content-Length`` added for a body; a name or value holding a line break or a
name holding ``:`` is refused, so no header can be smuggled in). :class:`AnswerReader`
is fed what a connection receives, in pieces of any size, and returns the whole
:class:`Reply` once it has arrived. It reads what RFC 9112 lets a server send:

* a ``Content-Length`` body, a ``chunked`` one (extensions and trailers skipped; no
  other transfer coding, as none is asked for), or a body that ends when the server
  closes the connection (no length given);
* no body for 1xx, 204 and 304 answers; interim 1xx answers are skipped;
* ``gzip`` (several members too) and ``deflate`` (zlib or raw) bodies, decompressed in
  bounded steps, so an answer that inflates a thousandfold is stopped at the cap, not
  expanded in memory first.

Bounds, whatever the server sends: the status line and headers are at most
:data:`MAX_HEAD` bytes, :data:`MAX_LINE` a line and :data:`MAX_FIELDS` fields; the body
at most ``max_body`` bytes as announced, as received (after de-chunking) and once
decompressed, else :class:`BodyTooLarge`. Whatever else breaks the protocol raises
:class:`ProtocolError`, whose message quotes the offending bytes whole (a line is bounded
anyway): cut here, a secret the server echoed would leave a piece the scrubber that cuts
the message later cannot recognise. The reader keeps only the headers it is asked for (and the few
that frame the message), so a server cannot make it hold more than the bounds above.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Mapping
from functools import cache
from typing import Final, NamedTuple

__all__ = [
    "MAX_FIELDS",
    "MAX_HEAD",
    "MAX_LINE",
    "AnswerReader",
    "BodyTooLarge",
    "ProtocolError",
    "Reply",
    "encode_request",
]

#: Most bytes of one status or header line (the bound aiohttp's parser has too).
MAX_LINE: Final = 8190
#: Most bytes of the status line and headers together, the blank line included.
MAX_HEAD: Final = 65536
#: Most header fields in one answer.
MAX_FIELDS: Final = 128
#: Most bytes of a chunk-size line (hex digits and extensions).
_MAX_CHUNK_LINE: Final = 1024

_CRLF: Final = b"\r\n"
_END_OF_HEAD: Final = b"\r\n\r\n"
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
#: The bytes of a header name (RFC 9110's token).
_TOKEN_BYTES: Final = (
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_TOKEN: Final = frozenset(_TOKEN_BYTES)
#: Header field lines after the status line: CRLF, a token, ":", a value without CR, LF or
#: NUL. What :func:`_field` checks line by line, for a whole head in one match.
_FIELD_LINES: Final = re.compile(rb"(?:\r\n[" + re.escape(_TOKEN_BYTES) + rb"]+:[^\r\n\x00]*)*")
#: The bytes a head or trailer line may not hold (but in the CRLF that ends it).
_BREAKS: Final = b"\r\n\x00"
_NO_BODY: Final = frozenset((204, 304))
#: Header fields the reader needs whatever it is asked to keep.
_FRAMING: Final = (b"content-length", b"transfer-encoding", b"connection", b"content-encoding")


class ProtocolError(ValueError):
    """The answer breaks HTTP/1.1 (or a bound of this module): the connection is unusable."""


class BodyTooLarge(Exception):
    """The body is over the cap: ``announced`` is its ``Content-Length`` when that said so."""

    def __init__(self, announced: int | None) -> None:
        super().__init__(announced)
        self.announced = announced


class Reply(NamedTuple):
    """One whole answer."""

    status: int
    headers: dict[str, str]
    """The kept fields that came (lower-case names), each value as sent (the first one)."""
    body: bytes
    """Decoded: de-chunked and decompressed."""
    reusable: bool
    """Whether the connection may carry another request (keep-alive, nothing left over)."""


def encode_request(method: str, target: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 request; ``Content-Length`` is added when there is a body.

    Raises :class:`ValueError` when a header name or value holds a line break (or a name
    holds ``:`` or nothing): nothing is sent then.
    """
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    text = "\r\n".join(lines)
    # Each line was one name and one value: a CR or LF inside one shows as an extra one.
    if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
        raise ValueError("a request header holds a line break: nothing was sent")
    if any(not name or ":" in name or " " in name for name in headers):
        raise ValueError("a request header name is empty or holds ':' or a space")
    return (text + "\r\n\r\n").encode("utf-8") + body


class AnswerReader:
    """Reads one answer from the bytes a connection receives (see the module's text)."""

    def __init__(
        self, max_body: int, keep: Collection[str] = (), *, head_only: bool = False
    ) -> None:
        """``keep``: the lower-case header names to hand back. ``head_only``: the answer
        has no body whatever its headers say (the answer to ``CONNECT``)."""
        self._cap = max_body
        self._kept, self._wanted = _names(tuple(keep))
        self._head_only = head_only
        self._buffer = bytearray()
        self._head_seen = 0  # bytes of the buffer already searched for the end of the head
        self._state = self._read_head
        self._status = 0
        self._headers: dict[str, str] = {}
        self._reusable = True
        self._remaining = 0  # of a Content-Length body, or of the current chunk
        self._trailer_bytes = 0
        self._wire = 0  # body bytes received (de-chunked, before decompression)
        self._parts: list[bytes] = []
        self._size = 0  # body bytes decoded
        self._inflater: zlib._Decompress | None = None
        self._wbits = 0
        self._done: Reply | None = None

    def feed(self, data: bytes) -> Reply | None:
        """Take the next bytes; the :class:`Reply` once the whole answer is in."""
        if self._done is not None:
            if data:  # bytes after the answer: the connection is not one to reuse
                self._done = self._done._replace(reusable=False)
            return self._done
        if not self._buffer and self._state == self._read_head:
            end = data.find(_END_OF_HEAD)
            if end >= 0 and end + 4 <= MAX_HEAD:
                return self._whole(data, end)
        self._buffer += data
        while self._done is None and self._state():
            pass
        return self._done

    def feed_eof(self) -> Reply:
        """The server closed the connection: the answer if it was whole, else ProtocolError."""
        if self._done is not None:
            return self._done
        if self._state == self._read_until_close:
            return self._finish(reusable=False)
        if self._state == self._read_head and not self._buffer:
            raise ProtocolError("the server closed the connection without answering")
        raise ProtocolError("the server closed the connection in the middle of its answer")

    # -- the head ---------------------------------------------------------------------

    def _whole(self, data: bytes, end: int) -> Reply | None:
        """``data`` holds the whole head (up to ``end``): the usual answer comes in one
        piece, and needs no copy into the buffer."""
        self._head(data[:end])
        if self._state == self._read_length and len(data) - end - 4 == self._remaining:
            self._body(data[end + 4 :])
            self._finish(reusable=self._reusable)
            return self._done
        rest = data[end + 4 :]
        if self._done is not None:  # an answer without a body, and bytes after it
            if rest:
                self._done = self._done._replace(reusable=False)
            return self._done
        self._buffer += rest
        while self._done is None and self._state():
            pass
        return self._done

    def _read_head(self) -> bool:
        buffer = self._buffer
        start = max(0, self._head_seen - 3)  # each byte searched once, however it trickles
        end = buffer.find(_END_OF_HEAD, start)
        if end < 0:
            if buffer.find(b"\n\n", start) >= 0 or buffer.find(b"\n\r\n", start) >= 0:
                # A blank line after a bare LF: the head ended for a lenient reader, and
                # waiting for CRLF CRLF would wait until the timeout.
                raise ProtocolError("the answer's head ends in bare LF lines")
            self._head_seen = len(buffer)
            if len(buffer) > MAX_HEAD:
                raise ProtocolError(f"the answer's headers are over {MAX_HEAD} bytes")
            return False
        if end + 4 > MAX_HEAD:
            raise ProtocolError(f"the answer's headers are over {MAX_HEAD} bytes")
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        self._head_seen = 0
        self._head(head)
        return True

    def _head(self, head: bytes) -> None:
        lines = head.split(_CRLF)
        if len(lines) > MAX_FIELDS + 1:
            raise ProtocolError(f"the answer has over {MAX_FIELDS} header fields")
        # Only the CRLFs between lines may be CR, LF or NUL: one pass over the whole head
        # (a test per line, ``in`` on bytes above all, costs more than the rest of it).
        if len(head.translate(None, _BREAKS)) != len(head) - 2 * (len(lines) - 1):
            raise ProtocolError("the answer's head holds a bare CR or LF, or a NUL")
        status_line = lines[0]
        if len(status_line) > MAX_LINE:
            raise ProtocolError(f"the answer's status line is over {MAX_LINE} bytes")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if (
            version not in (b"HTTP/1.1", b"HTTP/1.0")
            or len(code) != 3
            or not code.isdigit()
            or rest[3:4] not in (b"", b" ")
        ):
            raise ProtocolError(
                f"the answer does not start with an HTTP status line: {status_line!r}"
            )
        status = int(code)
        if status < 100:
            raise ProtocolError(f"the answer's status {status} is not an HTTP status")
        fields: dict[bytes, bytes] = {}
        wanted = self._wanted
        # Every field line checked at once (in C); the line at fault is found only to say so.
        checked = _FIELD_LINES.fullmatch(head, len(status_line)) is not None
        for line in lines[1:]:
            if len(line) > MAX_LINE:
                raise ProtocolError(f"a header line of the answer is over {MAX_LINE} bytes")
            if checked:
                name, _, value = line.partition(b":")
                value = value.strip(b" \t")
            else:
                name, value = _field(line)
            name = name.lower()
            if name not in wanted:
                continue
            seen = fields.get(name)
            if seen is None:
                fields[name] = value
            elif name == b"transfer-encoding":
                fields[name] = seen + b", " + value  # codings listed over several fields
            elif name == b"content-length" and seen != value:
                raise ProtocolError("the answer gives two different Content-Lengths")
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols, which was never asked for")
            return  # an interim answer: the real one follows
        self._status = status
        kept = self._kept
        self._headers = {
            name.decode("ascii", "replace"): value.decode("utf-8", "replace")
            for name, value in fields.items()
            if name in kept
        }
        # find, not ``in``: bytes' ``in`` tries its operand as an int first (an exception).
        connection = fields.get(b"connection", b"").lower()
        if version == b"HTTP/1.0":
            self._reusable = connection.find(b"keep-alive") >= 0
        else:
            self._reusable = connection.find(b"close") < 0
        self._start_body(status, fields)

    def _start_body(self, status: int, fields: dict[bytes, bytes]) -> None:
        if self._head_only or status in _NO_BODY:  # no body to decode, whatever its coding
            self._finish(reusable=self._reusable and not self._buffer)
            return
        encoding = fields.get(b"content-encoding", b"identity").strip().lower()
        if encoding in (b"gzip", b"x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif encoding == b"deflate":
            self._wbits = zlib.MAX_WBITS  # or raw deflate: decided by its first bytes
        elif encoding not in (b"identity", b""):
            raise ProtocolError(f"the answer is in an encoding never asked for: {encoding!r}")
        coding = fields.get(b"transfer-encoding")
        if coding is not None:
            if b"content-length" in fields:  # two framings: the way requests are smuggled
                raise ProtocolError("the answer gives both Transfer-Encoding and Content-Length")
            # No TE header is sent, so chunked is the only transfer coding a server may
            # apply; any other would come back still encoded, as if it were the body.
            if coding.strip().lower() != b"chunked":
                raise ProtocolError(f"the answer's transfer coding was never asked for: {coding!r}")
            self._state = self._read_chunk_size
            return
        length = fields.get(b"content-length")
        if length is None:
            self._reusable = False
            self._state = self._read_until_close
            return
        if not length.isdigit() or len(length) > 19:
            raise ProtocolError(f"the answer's Content-Length is not a number: {length!r}")
        self._remaining = int(length)
        if self._remaining > self._cap:
            raise BodyTooLarge(self._remaining)
        if self._remaining == 0:
            self._finish(reusable=self._reusable and not self._buffer)
            return
        self._state = self._read_length

    # -- the body ---------------------------------------------------------------------

    def _take(self) -> bool:
        """Move what the buffer holds of the ``_remaining`` bytes into the body; whether
        none remain."""
        buffer = self._buffer
        take = min(self._remaining, len(buffer))
        if take:
            self._body(bytes(buffer[:take]))
            del buffer[:take]
            self._remaining -= take
        return not self._remaining

    def _read_length(self) -> bool:
        if self._take():
            self._finish(reusable=self._reusable and not self._buffer)
        return False

    def _read_until_close(self) -> bool:
        if self._buffer:
            self._body(bytes(self._buffer))
            self._buffer.clear()
        return False

    def _read_chunk_size(self) -> bool:
        buffer = self._buffer
        end = buffer.find(_CRLF)
        if end < 0:
            if len(buffer) > _MAX_CHUNK_LINE or buffer.find(b"\n") >= 0:
                raise ProtocolError(
                    "a chunk-size line of the answer is too long or ends in a bare LF"
                )
            return False
        line = bytes(buffer[:end])
        if end > _MAX_CHUNK_LINE or line.find(b"\n") >= 0 or line.find(b"\r") >= 0:
            raise ProtocolError(
                "a chunk-size line of the answer is too long or holds a bare CR or LF"
            )
        size_text = line.partition(b";")[0].rstrip(b" \t")  # BWS before ";" only
        del buffer[: end + 2]
        if not size_text or len(size_text) > 16 or not _HEX.issuperset(size_text):
            raise ProtocolError(f"the answer has a bad chunk size: {size_text!r}")
        size = int(size_text, 16)
        if size == 0:
            self._state = self._read_trailers
            return True
        if self._wire + size > self._cap:
            raise BodyTooLarge(None)
        self._remaining = size
        self._state = self._read_chunk
        return True

    def _read_chunk(self) -> bool:
        if not self._take():
            return False
        self._state = self._read_chunk_end
        return True

    def _read_chunk_end(self) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer[:2] != _CRLF:
            raise ProtocolError("a chunk of the answer does not end with CRLF")
        del buffer[:2]
        self._state = self._read_chunk_size
        return True

    def _read_trailers(self) -> bool:
        buffer = self._buffer
        while True:
            end = buffer.find(_CRLF)
            if end < 0:
                if len(buffer) > MAX_LINE or buffer.find(b"\n") >= 0:
                    raise ProtocolError("a trailer line of the answer is too long or ends in LF")
                return False
            if end > MAX_LINE:
                raise ProtocolError(f"a trailer line of the answer is over {MAX_LINE} bytes")
            self._trailer_bytes += end + 2
            if self._trailer_bytes > MAX_HEAD:
                raise ProtocolError(f"the answer's trailers are over {MAX_HEAD} bytes")
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if not line:  # the blank line that ends the trailers
                self._finish(reusable=self._reusable and not buffer)
                return False
            if len(line.translate(None, _BREAKS)) != len(line):
                raise ProtocolError("a trailer line of the answer holds a bare CR, LF or NUL")
            _field(line)  # a trailer is checked as a header is, then dropped

    def _body(self, data: bytes) -> None:
        if not data:
            return
        self._wire += len(data)
        if self._wire > self._cap:
            raise BodyTooLarge(None)
        if self._wbits:
            self._inflate(data)
        else:
            self._keep(data)

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._cap:
            raise BodyTooLarge(None)
        self._parts.append(data)

    def _inflate(self, data: bytes) -> None:
        try:
            while data:
                inflater = self._inflater
                if inflater is None:
                    if self._wbits == zlib.MAX_WBITS and not _is_zlib(data):
                        self._wbits = -zlib.MAX_WBITS  # raw deflate, as some servers send
                    inflater = self._inflater = zlib.decompressobj(self._wbits)
                # At most one byte over what the cap leaves: enough to know it is over.
                self._keep(inflater.decompress(data, self._cap - self._size + 1))
                if inflater.eof:  # a gzip member ended: another may follow
                    data = inflater.unused_data
                    self._inflater = None
                else:
                    data = inflater.unconsumed_tail
        except zlib.error as exc:
            raise ProtocolError(f"the answer's compressed body is corrupt: {exc}") from None

    def _finish(self, *, reusable: bool) -> Reply:
        if self._wbits and self._inflater is not None:
            raise ProtocolError("the answer's compressed body is cut short")
        body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._done = done = Reply(self._status, self._headers, body, reusable)
        self._parts = []
        return done


@cache
def _names(keep: tuple[str, ...]) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """The header names to hand back, and those to read (the framing ones added), as bytes:
    built once for each set a caller asks for."""
    kept = frozenset(name.encode("ascii") for name in keep)
    return kept, kept.union(_FRAMING)


def _field(line: bytes) -> tuple[bytes, bytes]:
    """``(name, value)`` of one header or trailer line (already known to hold no CR, LF or
    NUL), or ProtocolError: a name is a token (no space, tab or control character)."""
    name, colon, value = line.partition(b":")
    if not colon or not name or not _TOKEN.issuperset(name):
        raise ProtocolError(f"the answer has a malformed header line: {line!r}")
    return name, value.strip(b" \t")


def _is_zlib(data: bytes) -> bool:
    """Whether ``data`` starts with a zlib header (RFC 1950) rather than raw deflate.

    The first byte decides alone when it is all that has come: method 8 with a window
    of at most 32 KiB would, as raw deflate, be a stored block with non-zero padding
    bits, which no encoder writes; the second byte, when there, is checked too."""
    if not data or data[0] & 0x0F != 8 or data[0] >> 4 > 7:
        return False
    return len(data) < 2 or ((data[0] << 8) | data[1]) % 31 == 0
