"""The SWR API client: GET requests to one endpoint, through the transport.

The worker pool calls :meth:`SwrClient.fetch_tag` and gets a
:class:`~crawler.http.response.Response` or a
:class:`~crawler.errors.TransportError`; it never sees a connection. The client
does not know Parquet, retries or rate limits: one call = at most one
request, except that a 401 answered by a credential that can be renewed (IAM
login) is sent once more with the new credential, and ``Response.requests``
says so. For a non-200 the client reads the Huawei error code and message,
bounded and scrubbed of every secret the run knows, so nothing a server
echoes reaches a log line or a Parquet value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crawler.errors import TransportError
from crawler.http.credentials import Auth
from crawler.http.endpoint import Endpoint
from crawler.http.response import ERROR_TEXT_LIMIT, Answer, Response, error_fields
from crawler.http.transport import Transport


class SwrClient:
    """GET requests to one SWR endpoint over the run's transport."""

    def __init__(self, endpoint: Endpoint, auth: Auth, transport: Transport) -> None:
        self._endpoint = endpoint
        self._auth = auth
        self._transport = transport

    @property
    def auth(self) -> Auth:
        """The credential every request carries (its ``method`` names it in run.json)."""
        return self._auth

    async def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Response:
        """GET ``path``; on a 401 let the credential renew itself once."""
        first, headers = await self._send(path, query)
        if first.status != 401 or not await self._auth.refresh(headers):
            return self._response(first, 1)
        second, _ = await self._send(path, query, sent_before=1)
        return self._response(second, 2)

    #: GET one tag-details path (``Target.request_path``): :meth:`get` itself, since a
    #: wrapper coroutine would be one more frame to resume on every request.
    fetch_tag = get

    async def _send(
        self, path: str, query: Sequence[tuple[str, str]], sent_before: int = 0
    ) -> tuple[Answer, Mapping[str, str]]:
        try:
            # As returned: a static token's constant mapping is not copied per request.
            headers = await self._auth.headers("GET", self._endpoint.host, path, query, b"")
        except TransportError as exc:
            # An IAM login that cannot reach IAM (IamUnavailable): no SWR
            # request went out this time. One that IAM refuses raises
            # AuthenticationFailed through to the pool, which stops the run.
            raise TransportError(exc.kind, exc.message, sent_before) from None
        try:
            answer = await self._transport.request(
                "GET", self._endpoint.url + path, headers=headers, query=query
            )
        except TransportError as exc:
            raise TransportError(exc.kind, exc.message, sent_before + 1) from None
        return answer, headers

    def _response(self, answer: Answer, requests: int) -> Response:
        status = answer.status
        code = message = None
        if status != 200:
            scrub = self._transport.scrubber
            code, message = error_fields(answer.body, scrub)
            if 300 <= status < 400:
                location = answer.header("location")
                where = f" to {scrub(location, ERROR_TEXT_LIMIT)}" if location else ""
                message = f"HTTP {status}: a redirect{where}, never followed (check --endpoint)"
            elif status < 300:
                message = f"HTTP {status} instead of 200: no tag details" + (
                    f" ({message})" if message else ""
                )
        return Response(
            status,
            answer.body,
            answer.header("retry-after"),
            answer.header("x-request-id"),
            requests=requests,
            error_code=code,
            error_msg=message,
        )

    async def aclose(self) -> None:
        """Nothing of its own to release: the transport and the credential belong to the run."""
