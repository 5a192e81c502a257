"""SDK-HMAC-SHA256 request signing, byte-identical to ``huaweicloudsdkcore``'s signer.

Pure: takes the request's parts and the time, returns the ``Authorization``
value. The same code verifies signatures in the sandbox. The steps follow
``huaweicloudsdkcore/signer/signer.py`` (see ``reference/swr-api-notes.md``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def sdk_date(now: datetime) -> str:
    """The ``X-Sdk-Date`` value for a UTC time."""
    return now.strftime(DATE_FORMAT)


def _encode(value: str) -> str:
    # Only unreserved characters (and "~") stay as they are, "/" included.
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """Percent-decode, re-encode each segment, and end with ``/``."""
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Sorted ``k=v`` pairs, each side encoded, joined with ``&``."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query))


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lower-cased, sorted names of the headers that are signed (no ``_`` in the name)."""
    return sorted(name.lower() for name in headers if "_" not in name)


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[str, list[str]]:
    """The canonical request and the signed header names."""
    names = signed_header_names(headers)
    by_name = {name.lower(): str(value).strip() for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{by_name[name]}\n" for name in names)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    text = "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            ";".join(names),
            payload_hash,
        )
    )
    return text, names


def signature(sk: str, date: str, canonical: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the secret key."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    return hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    ak: str,
    sk: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes = b"",
) -> str:
    """The ``Authorization`` header value for a request.

    ``headers`` must already hold ``Host`` and ``X-Sdk-Date`` (and every other
    header that will be sent and signed).
    """
    date = next(value for name, value in headers.items() if name.lower() == "x-sdk-date")
    canonical, names = canonical_request(method, path, query, headers, body)
    return (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature(sk, date, canonical)}"
    )
