"""The one seam for network I/O: an SWR API client over aiohttp.

The worker pool calls :meth:`SwrClient.fetch_tag` and gets a
:class:`Response` or a :class:`TransportError`; it never sees aiohttp. The
client does not know Parquet, retries or rate limits: one call = at most one
request, except that a 401 answered by a credential that can be renewed (IAM
login) is sent once more with the new credential, and ``Response.requests``
says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

from crawler import __version__
from crawler.errors import ErrorKind
from crawler.http.credentials import Auth

USER_AGENT = f"swr-crawler/{__version__}"


@dataclass(frozen=True, slots=True)
class Response:
    """What came back for one logical request."""

    status: int
    body: bytes
    retry_after: str | None
    request_id: str | None
    requests: int = 1
    """HTTP requests actually sent (2 when a renewed credential was retried)."""


class TransportError(Exception):
    """No HTTP answer: ``kind`` is ``timeout`` or ``network``.

    ``requests`` is the HTTP requests actually sent: 0 when the credential
    could not be obtained (IAM unreachable) and nothing went to SWR.
    """

    def __init__(self, kind: ErrorKind, message: str, requests: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.requests = requests


class SwrClient:
    """GET requests to one SWR endpoint with one connection pool."""

    def __init__(
        self,
        endpoint: str,
        auth: Auth,
        *,
        timeout: float,
        max_connections: int,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        url = URL(self._endpoint)
        # The Host header as aiohttp sends it: default ports are left out.
        self._host = url.raw_authority if not url.is_default_port() else str(url.raw_host)
        self._auth = auth
        self._owns_session = session is None
        self._session = session or new_session(timeout=timeout, max_connections=max_connections)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying session (the IAM login shares its connection pool)."""
        return self._session

    async def fetch_tag(self, request_path: str) -> Response:
        """GET one tag-details path (``Target.request_path``)."""
        return await self.get(request_path)

    async def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Response:
        """GET ``path``; on a 401 let the credential renew itself once."""
        first = await self._send(path, query)
        if first[0].status != 401:
            return first[0]
        if not await self._auth.refresh(first[1]):
            return first[0]
        second, _ = await self._send(path, query, sent_before=1)
        return Response(
            second.status, second.body, second.retry_after, second.request_id, requests=2
        )

    async def _send(
        self, path: str, query: Sequence[tuple[str, str]], sent_before: int = 0
    ) -> tuple[Response, Mapping[str, str]]:
        url = URL(self._endpoint + path, encoded=True)
        if query:
            url = url.with_query(list(query))
        try:
            # As returned: a static token's constant mapping is not copied per request.
            headers = await self._auth.headers("GET", self._host, path, query, b"")
        except aiohttp.ClientError as exc:
            # An IAM login that cannot reach IAM (IamUnavailable) is a transient
            # network failure, but no SWR request went out: it is not counted.
            # One that IAM refuses raises AuthenticationFailed through to the
            # pool, which stops the run.
            raise TransportError(ErrorKind.NETWORK, str(exc)[:300], sent_before) from None
        try:
            async with self._session.get(url, headers=headers, allow_redirects=False) as resp:
                body = await resp.read()
                return (
                    Response(
                        resp.status,
                        body,
                        resp.headers.get("Retry-After"),
                        resp.headers.get("X-Request-Id"),
                    ),
                    headers,
                )
        except (TimeoutError, asyncio.TimeoutError) as exc:  # noqa: UP041 - aiohttp raises either
            raise TransportError(
                ErrorKind.TIMEOUT,
                f"no answer within the timeout ({type(exc).__name__})",
                sent_before + 1,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(ErrorKind.NETWORK, _describe(exc), sent_before + 1) from None

    async def aclose(self) -> None:
        """Close the connection pool if this client made it."""
        if self._owns_session:
            await self._session.close()


def new_session(*, timeout: float, max_connections: int) -> aiohttp.ClientSession:
    """A session tuned for many small GETs to one host."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=300)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        skip_auto_headers=("User-Agent",),
        raise_for_status=False,
    )
    # aiohttp silently resends an idempotent request once when a reused
    # keep-alive connection turns out to be closed. That request would not be
    # counted in `attempts` and would bypass the rate limiter, so it is off:
    # our own retry policy (with backoff, counted) handles the failure instead.
    # The attribute is in ClientSession.__slots__, so a rename fails loudly.
    session._retry_connection = False
    return session


def _describe(exc: BaseException) -> str:
    """A one-line description of a connection failure (no URL credentials, no stack)."""
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
