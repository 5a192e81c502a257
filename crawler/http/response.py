"""What comes back from the network, as plain values, and reading Huawei error bodies.

No connections here: the pool and the IAM login see these types, never the
transport's own (:mod:`crawler.http.transport`).

* :class:`Answer` is one HTTP exchange as the transport returns it: status,
  the few headers anyone reads, and the body (already capped in size).
* :class:`Response` is what :class:`crawler.http.client.SwrClient` makes of
  one logical request for the pool: for a non-200, the Huawei error code and
  message are already read from the body, bounded and scrubbed of secrets.
* :func:`error_fields` reads ``(error_code, error_msg)`` from any Huawei error
  body form (SWR's and IAM's alike). Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

__all__ = [
    "CODE_LIMIT",
    "DEFAULT_MAX_BODY_BYTES",
    "ERROR_TEXT_LIMIT",
    "KEPT_HEADERS",
    "MESSAGE_LIMIT",
    "Answer",
    "Response",
    "error_fields",
]

#: The default cap on one answer's body (``--max-body-bytes``): far above the
#: largest real tag details (a manifest list of a few hundred platforms is
#: well under 1 MiB), far below what a worker pool can hold many of.
DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024

#: Response headers the transport keeps (lower-case); every other one is dropped.
KEPT_HEADERS: Final = ("retry-after", "x-request-id", "location", "x-subject-token")

#: Most characters of an ``error_code``.
CODE_LIMIT: Final = 100
#: Most characters of an ``error_msg`` read from a JSON error body.
MESSAGE_LIMIT: Final = 1000
#: Most characters kept of an error body that is not JSON (an HTML page, say).
ERROR_TEXT_LIMIT: Final = 200
#: Bytes of a non-JSON body decoded for its text: enough for the kept text
#: and for a secret that starts inside it to be seen whole and scrubbed.
_TEXT_WINDOW: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange: status, the :data:`KEPT_HEADERS` that were sent, the body."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A kept header's value by its lower-case name, None if absent."""
        return self.headers.get(name)


@dataclass(frozen=True, slots=True)
class Response:
    """What came back for one logical request."""

    status: int
    body: bytes
    retry_after: str | None
    request_id: str | None
    requests: int = 1
    """HTTP requests actually sent (2 when a renewed credential was retried)."""
    error_code: str | None = None
    """For a non-200: the Huawei error code, bounded and scrubbed of secrets."""
    error_msg: str | None = None
    """For a non-200: the error message (or the start of a non-JSON body), ditto."""


#: ``clean(text, limit)``: at most ``limit`` characters of ``text`` fit to keep.
Cleaner = Callable[[str, int], str]


def _cut(text: str, limit: int) -> str:
    return text.strip()[:limit]


_CODE_KEYS: Final = ("error_code", "errorCode")
_MESSAGE_KEYS: Final = ("error_msg", "errorMsg", "errorMessage")
_ITEM_CODE_KEYS: Final = ("errorCode", "error_code", "code")
_ITEM_MESSAGE_KEYS: Final = ("errorMessage", "errorMsg", "error_msg", "message", "detail", "title")


def error_fields(
    body: bytes | bytearray | memoryview | str, clean: Cleaner = _cut
) -> tuple[str | None, str | None]:
    """``(error_code, error_msg)`` from a Huawei error body, whichever form it takes.

    Forms: ``error_code``/``error_msg`` (new style and the API gateway),
    ``errorCode``/``errorMsg`` or ``errorMessage``, an ``errors`` list of
    ``{errorCode, errorMessage, detail}``, and IAM's ``{"error": {code, message}}``.
    Top-level fields win, then the first list entry that has any. A body that
    is not JSON, or JSON in none of these forms, gives ``(None, text)`` with
    the first :data:`ERROR_TEXT_LIMIT` characters of the text, so the operator
    still sees what the gateway said; an empty body gives ``(None, None)``.
    Every text goes through ``clean`` with its limit (:data:`CODE_LIMIT`,
    :data:`MESSAGE_LIMIT`) whole, before anything is cut. Never raises.
    """
    code, message, text = _parse(body)
    limit = MESSAGE_LIMIT
    if code is None and message is None:
        if not body:
            return None, None
        message, limit = (_body_text(body) if text is None else text), ERROR_TEXT_LIMIT
    return (
        (clean(code, CODE_LIMIT) or None) if code is not None else None,
        (clean(message, limit) or None) if message is not None else None,
    )


def _parse(
    body: bytes | bytearray | memoryview | str,
) -> tuple[str | None, str | None, str | None]:
    """Code, message, and for a bare JSON string the string (shown as the body's text)."""
    if not body:
        return None, None, None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None, None
    code: str | None = None
    message: str | None = None
    if type(document) is dict:
        code = _first_text(document, _CODE_KEYS)
        message = _first_text(document, _MESSAGE_KEYS)
        items = document.get("errors")
        nested = document.get("error")
        if type(nested) is dict:
            items = [nested, *(items if type(items) is list else ())]
    elif type(document) is list:
        items = document
    elif type(document) is str:
        return None, None, document
    else:
        items = None
    if (code is None or message is None) and type(items) is list:
        for item in items:
            if type(item) is not dict:
                continue
            item_code = _first_text(item, _ITEM_CODE_KEYS)
            item_message = _first_text(item, _ITEM_MESSAGE_KEYS)
            if item_code is None and item_message is None:
                continue
            code = code or item_code
            message = message or item_message
            break
    return code, message, None


def _first_text(mapping: dict[str, object], keys: tuple[str, ...]) -> str | None:
    """The first non-empty value among ``keys``: a string as is, an integer as its digits."""
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value:
            return value
    return None


def _body_text(body: bytes | bytearray | memoryview | str) -> str:
    if isinstance(body, str):
        return body[:_TEXT_WINDOW]
    return bytes(body[:_TEXT_WINDOW]).decode("utf-8", errors="replace")
