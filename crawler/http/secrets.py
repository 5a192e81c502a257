"""Secrets, and keeping them out of what a server sends back.

:class:`Secret` holds a credential so that no repr, str or pickle shows it.
:class:`Scrubber` knows every secret of the run (the token, SK, security
token, password, proxy password, each token IAM issues) and removes them
from any text that came from a server (error codes and messages, a
redirect's ``Location``, a connection error's text) before it is logged or
stored: a hostile or careless server that echoes the request's
``X-Auth-Token`` into its error body must not put it into ``errors/*.parquet``.

A server can quote a secret in many spellings. The scrubber replaces every
spelling it can produce itself (as is; JSON-escaped with and without
``\\uXXXX``, ``\\/`` included; ``repr``/``ascii`` of the text and of its UTF-8
bytes; URL-, form- and HTML-encoded), case-insensitively. Then it decodes
what is left (backslash escapes, HTML entities, percent-encoding, twice
over) and, if a secret still shows, withholds the whole text rather than
guess: ``(server text withheld: it quoted a credential)``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, final
from urllib.parse import quote, quote_plus, unquote_plus

from crawler import USER_AGENT

__all__ = [
    "CONTENT_TYPE",
    "TOKEN_HEADER",
    "WITHHELD",
    "Scrubber",
    "Secret",
    "token_headers",
    "utc_now",
]

CONTENT_TYPE: Final = "application/json"
TOKEN_HEADER: Final = "X-Auth-Token"  # noqa: S105 - a name, not a secret
MASK: Final = "***"
WITHHELD: Final = "(server text withheld: it quoted a credential)"


def utc_now() -> datetime:
    """The default clock of the credentials: aware UTC now."""
    return datetime.now(UTC)


@final
class Secret:
    """A string that never shows itself in repr(), str() or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for the bytes that go on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:  # a pickled Secret would carry the value in clear
        raise TypeError("a Secret cannot be pickled")


def token_headers(token: str, user_agent: str = USER_AGENT) -> Mapping[str, str]:
    """The complete, constant headers of a request carrying ``X-Auth-Token``."""
    return MappingProxyType(
        {"Content-Type": CONTENT_TYPE, "User-Agent": user_agent, TOKEN_HEADER: token}
    )


def spellings(secret: str) -> set[str]:
    """The ways a server's text may quote ``secret`` that the scrubber replaces."""
    forms = {secret}
    for ensure_ascii in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
    forms |= {repr(secret)[1:-1], ascii(secret)[1:-1], repr(secret.encode())[2:-1]}
    forms |= {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms |= {html.escape(secret), html.escape(secret, quote=False)}
    forms.add(secret.encode("ascii", "xmlcharrefreplace").decode())
    return {form for form in forms if form}


_ESCAPE: Final = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "0": "\0"}


def unescape_backslashes(text: str) -> str:
    """Undo JSON and Python string escapes; ``\\xHH`` runs are read as UTF-8 bytes."""
    if "\\" not in text:
        return text
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        out += text[position : match.start()].encode("utf-8", "surrogatepass")
        code = match.group(1)
        if code[0] in "uU" and len(code) > 1:
            out += chr(int(code[1:], 16)).encode("utf-8", "surrogatepass")
        elif code[0] == "x" and len(code) == 3:
            out.append(int(code[1:], 16))
        else:
            out += _SIMPLE_ESCAPES.get(code, code).encode("utf-8", "surrogatepass")
        position = match.end()
    out += text[position:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


_DECODERS: Final = (unescape_backslashes, html.unescape, unquote_plus)


def _decodings(text: str, depth: int = 2) -> Iterator[str]:
    """``text`` through every chain of up to ``depth`` decoders."""
    yield text
    if depth == 0:
        return
    for decode in _DECODERS:
        decoded = decode(text)
        if decoded != text:
            yield from _decodings(decoded, depth - 1)


@final
class Scrubber:
    """Every secret of the run, and the one function that removes them from server text.

    Secrets are added as they become known (``add``), so a token IAM issues
    mid-run is scrubbed from the next message on.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._longest = 0

    def add(self, secret: str | Secret | None) -> None:
        """Know one more secret (empty and None are ignored)."""
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value or value in self._secrets:
            return
        self._secrets.add(value)
        forms = sorted({f for s in self._secrets for f in spellings(s)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, forms)), re.IGNORECASE)
        self._longest = len(forms[0])

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._secrets)} secrets)"

    def __call__(self, text: str, limit: int | None = None) -> str:
        """``text`` without any secret, its whitespace collapsed, at most ``limit`` characters.

        Only the first ``limit`` characters, plus room for a secret that starts
        inside them, are looked at: a cut never leaves half a secret behind.
        """
        if limit is not None:
            # The longest spelling is at most ~10 characters per character
            # (&#xHHHHH;), so a secret that starts before ``limit`` ends inside.
            text = text[: limit + 12 * self._longest + 16]
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
            lowered = [s.lower() for s in self._secrets]
            for decoded in _decodings(text):
                folded = decoded.lower()
                if any(secret in folded for secret in lowered):
                    return WITHHELD
        text = _CONTROL.sub(_escape_control, " ".join(text.split()))
        return text if limit is None else text[:limit]


#: Control characters left after whitespace is collapsed (ESC, BEL, C1): a
#: server's text must not drive the operator's terminal.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape_control(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"
