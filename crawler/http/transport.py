"""The one seam for network I/O: every HTTP request of a run, to SWR and to IAM.

:meth:`Transport.request` sends one request and returns an
:class:`~crawler.http.response.Answer` or raises a
:class:`~crawler.errors.TransportError`. This is the only module that
imports aiohttp; no aiohttp type crosses its interface. What it guarantees,
whatever the server does:

* **One request per call.** Redirects are never followed (a 3xx is returned
  as it is); aiohttp's silent resend of a request on a closed keep-alive
  connection is off, so every request is counted and rate-limited.
* **Bounded time:** ``timeout`` seconds for the whole exchange, body included.
* **Bounded memory:** a body over ``max_body_bytes`` (as announced by
  ``Content-Length``, as received on the wire, or once decompressed) ends
  the read at once: ``TransportError`` of kind ``too_large``. aiohttp
  decompresses in bounded steps, so a gzip bomb never expands in one go.
  Headers are bounded by aiohttp (8190 bytes a line).
* **TLS:** certificates are verified (the system's CAs, or ``SSL_CERT_FILE``),
  with the context of :mod:`crawler.http.tls`, built at the first ``https://``
  request; a certificate that does not verify is kind ``tls``, which stops the run.
* **Proxies:** ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (either case) are
  read once per host, as ``urllib`` reads them; ``~/.netrc`` is not read
  (aiohttp's ``trust_env`` would read it and add a second credential).
* **No secret in an error:** every message is scrubbed by the run's
  :class:`~crawler.http.secrets.Scrubber` and kept to one short line.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Final

import structlog
from yarl import URL

from crawler.errors import ErrorKind, TransportError
from crawler.http.response import DEFAULT_MAX_BODY_BYTES, KEPT_HEADERS, Answer
from crawler.http.secrets import Scrubber
from crawler.http.tls import client_context, default_contexts_without_ca_files

with default_contexts_without_ca_files():
    import aiohttp

__all__ = ["Transport"]
#: Most characters of a connection failure's description.
MESSAGE_LIMIT: Final = 300

_log = structlog.get_logger("crawler.http")

_Proxy = tuple[URL, aiohttp.BasicAuth | None] | None


class Transport:
    """One connection pool and the rules above, shared by the SWR client and the IAM login."""

    def __init__(
        self,
        *,
        timeout: float,
        max_connections: int,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.scrubber = scrubber if scrubber is not None else Scrubber()
        """Every secret of the run; credentials add theirs, IAM each token it issues."""
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            # The credential's headers name the User-Agent; aiohttp adds none of its own.
            skip_auto_headers=("User-Agent",),
            raise_for_status=False,
            trust_env=False,  # proxies are read below, without ~/.netrc
        )
        # aiohttp silently resends an idempotent request once when a reused
        # keep-alive connection turns out to be closed. That request would not be
        # counted in `attempts` and would bypass the rate limiter, so it is off:
        # our own retry policy (with backoff, counted) handles the failure instead.
        # The attribute is in ClientSession.__slots__, so a rename fails loudly.
        self._session._retry_connection = False
        self._proxies: dict[tuple[str, str], _Proxy] = {}
        self._tls: ssl.SSLContext | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        query: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Answer:
        """Send one request to ``url`` (already percent-encoded) and read its answer."""
        target = URL(url, encoded=True)
        if query:
            target = target.with_query(list(query))
        proxy = self._proxy_for(target)
        proxy_scheme = proxy[0].scheme if proxy else None
        try:
            async with self._session.request(
                method,
                target,
                headers=headers,
                data=body or None,
                # aiohttp also builds the TLS to an https proxy from this setting, so a
                # plain-http endpoint behind one needs our context too.
                ssl=self._tls_context() if "https" in (target.scheme, proxy_scheme) else True,
                allow_redirects=False,
                proxy=proxy[0] if proxy else None,
                proxy_auth=proxy[1] if proxy else None,
            ) as resp:
                kept = {name: value for name in KEPT_HEADERS if (value := resp.headers.get(name))}
                data = await self._read_body(resp)
                return Answer(resp.status, data, kept)
        except TransportError:
            raise
        except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 - aiohttp raises either
            raise TransportError(
                ErrorKind.TIMEOUT, f"no answer within the timeout of {self.timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise TransportError(_kind_of(exc), self.describe(exc)) from None

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        cap = self.max_body_bytes
        announced = resp.content_length
        if announced is not None and announced > cap:
            resp.close()
            raise TransportError(
                ErrorKind.TOO_LARGE,
                f"the answer announces {announced} bytes, over --max-body-bytes ({cap})",
            )
        content = resp.content
        if content.is_eof():
            # The whole answer came with its headers (the usual small answer): take
            # what is buffered without the chunk loop, and hold it to the same cap.
            data = content.read_nowait()
            # (An empty body's reader keeps no raw byte count: nothing to hold to the cap.)
            if data and (len(data) > cap or content.total_raw_bytes > cap):
                raise self._too_large(resp, cap)
            return data
        chunks: list[bytes] = []
        size = 0
        async for chunk in content.iter_any():
            size += len(chunk)
            if size > cap or content.total_raw_bytes > cap:
                raise self._too_large(resp, cap)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _too_large(resp: aiohttp.ClientResponse, cap: int) -> TransportError:
        resp.close()  # the rest is never read: the connection is dropped
        return TransportError(
            ErrorKind.TOO_LARGE,
            f"the answer is over --max-body-bytes ({cap} bytes): the rest was not read",
        )

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = client_context()  # loads the CA file once (~25 ms), for https only
        return self._tls

    def _proxy_for(self, url: URL) -> _Proxy:
        key = (url.scheme, url.host or "")
        if key not in self._proxies:
            self._proxies[key] = self._find_proxy(*key)
        return self._proxies[key]

    def _find_proxy(self, scheme: str, host: str) -> _Proxy:
        """The proxy the environment names for ``scheme://host``, as urllib reads it."""
        if host and urllib.request.proxy_bypass(host):
            return None
        found = urllib.request.getproxies().get(scheme)
        if not found:
            return None
        try:
            proxy = URL(found if "://" in found else f"http://{found}")
        except ValueError:
            _log.warning("http.proxy_unusable", scheme=scheme, host=host)
            return None
        auth = None
        if proxy.user is not None:
            self.scrubber.add(proxy.password)
            auth = aiohttp.BasicAuth(proxy.user, proxy.password or "")
            proxy = proxy.with_user(None)
        _log.info("http.proxy", scheme=scheme, host=host, proxy=str(proxy))
        return proxy, auth

    def describe(self, exc: BaseException) -> str:
        """A one-line, scrubbed description of a failure (no URL credentials, no stack)."""
        text = str(exc).strip() or type(exc).__name__
        return self.scrubber(f"{type(exc).__name__}: {text}", MESSAGE_LIMIT)

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._session.closed

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._session.close()


_CERTIFICATE_ERRORS: Final = (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError)


def _kind_of(exc: BaseException) -> ErrorKind:
    """``tls`` for a certificate that does not verify, else ``network``."""
    cause: BaseException | None = exc
    for _ in range(5):  # the certificate error may be wrapped
        if cause is None:
            break
        if isinstance(
            cause, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError
        ):
            return ErrorKind.TLS
        cause = cause.__cause__ or cause.__context__
    return ErrorKind.NETWORK
