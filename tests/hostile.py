"""A hostile SWR look-alike for tests: an aiohttp server on 127.0.0.1 that misbehaves on purpose.

Apart from the sandbox (which behaves like SWR), this one does what a broken
or malicious server might. The tag of a tag-details request picks the
behaviour (``ns/repo:<behaviour>``, or ``<behaviour>.<n>`` for more targets alike):

=================  ==============================================================
``ok``             200 with a small tag object
``echo-json``      400 whose JSON ``error_msg`` quotes the request's X-Auth-Token
``echo-escaped``   400 whose JSON quotes the token with every character ``\\uXXXX``
``echo-html``      502 with an HTML page that quotes the token
``echo-401``       401 whose body quotes the token (stops the run)
``echo-repr``      500 whose text is ``repr()`` of the request headers
``echo-long``      400 with 30 kB of text, then the token, then more text
``big-msg``        400 whose ``error_msg`` is 5 MB (under the body cap)
``huge``           200 that announces and sends 300 MB
``endless``        200 that streams, chunked, until the client hangs up (2 GiB at most)
``bomb``           200, ``Content-Encoding: gzip``, 1 MB that inflates to 1 GiB
``chunked``        200 with a small tag object, chunked (no ``Content-Length``), in one write
``redirect``       302 to ``Location: http://elsewhere.example/<token>``
``created``        201 with a tag object
``empty``          204
``timeout408``     408
=================  ==============================================================

``POST /v3/auth/tokens`` is an IAM: it issues ``IAM-ISSUED-<n>-...`` tokens
(recorded in :attr:`Hostile.issued`), or with ``refuse_login`` answers 401
quoting the password in JSON-escaped and ``repr`` forms, or with
``stall_login`` waits ``stall_seconds`` before answering.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import cache

from aiohttp import web

MIB = 1 << 20
TAG_BODY = json.dumps({"id": 1, "tag": "t", "size": 5, "manifest": "{}", "digest": "sha256:0"})


@cache
def gzip_bomb() -> bytes:
    """1 GiB of zeros as gzip (about 1 MB): 256 gzip members of 4 MiB each, which a
    gzip reader inflates one after the other (compressing 4 MiB once is quick)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = compressor.compress(bytes(4 * MIB)) + compressor.flush()
    return member * 256


@dataclass
class Hostile:
    """The server's state: what it issued and what it saw."""

    refuse_login: bool = False
    stall_login: bool = False
    stall_seconds: float = 20.0
    issued: list[str] = field(default_factory=list)
    seen_paths: list[str] = field(default_factory=list)
    url: str = ""

    async def tag(self, request: web.Request) -> web.StreamResponse:
        self.seen_paths.append(request.path)
        behaviour = request.match_info["tag"].split(".")[0]  # "huge.2": "huge" again
        token = request.headers.get("X-Auth-Token", "")
        if behaviour == "ok":
            return web.Response(body=TAG_BODY.encode(), content_type="application/json")
        if behaviour == "echo-json":
            body = {"error_code": "SVCSTG.SWR.4000001", "error_msg": f"bad token {token} here"}
            return web.json_response(body, status=400)
        if behaviour == "echo-escaped":
            escaped = "".join(f"\\u{ord(c):04x}" for c in token)
            text = '{"error_code":"E","error_msg":"token ' + escaped + ' refused"}'
            return web.Response(status=400, text=text, content_type="application/json")
        if behaviour == "echo-html":
            page = f"<html><body><h1>502</h1><pre>X-Auth-Token: {token}</pre></body></html>"
            return web.Response(status=502, text=page, content_type="text/html")
        if behaviour == "echo-401":
            body = {"error_code": "APIG.1002", "error_msg": f"Incorrect token {token}"}
            return web.json_response(body, status=401)
        if behaviour == "echo-repr":
            return web.Response(status=500, text=repr(dict(request.headers)))
        if behaviour == "echo-long":
            text = "x" * 30_000 + token + "y" * 1000
            return web.json_response({"error_code": "E", "error_msg": text}, status=400)
        if behaviour == "big-msg":
            return web.json_response({"error_code": "E", "error_msg": "m" * 5_000_000}, status=400)
        if behaviour == "huge":
            return await _stream(request, 300 * MIB, announce=True)
        if behaviour == "endless":
            return await _stream(request, 2048 * MIB, announce=False)
        if behaviour == "bomb":
            bomb = gzip_bomb()
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return web.Response(body=bomb, headers=headers)
        if behaviour == "chunked":
            response = web.Response(body=TAG_BODY.encode(), content_type="application/json")
            response.enable_chunked_encoding()
            return response
        if behaviour == "redirect":
            return web.Response(
                status=302, headers={"Location": f"http://elsewhere.example/{token}"}
            )
        if behaviour == "created":
            return web.Response(status=201, body=TAG_BODY.encode(), content_type="application/json")
        if behaviour == "empty":
            return web.Response(status=204)
        if behaviour == "timeout408":
            return web.Response(status=408, text="Request Timeout")
        return web.json_response({"error_code": "E", "error_msg": "unknown"}, status=404)

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.stall_login:
            await asyncio.sleep(self.stall_seconds)
        password = body["auth"]["identity"]["password"]["user"]["password"]
        if self.refuse_login:
            quoted = json.dumps(password)[1:-1]
            text = json.dumps(
                {"error": {"code": 401, "message": f"wrong password {password!r} ({quoted})"}}
            )
            return web.Response(status=401, text=text, content_type="application/json")
        token = f"IAM-ISSUED-{len(self.issued)}-" + "Q" * 40
        self.issued.append(token)
        answer = {"token": {"expires_at": "2999-01-01T00:00:00.000000Z"}}
        return web.json_response(answer, status=201, headers={"X-Subject-Token": token})


async def _stream(request: web.Request, size: int, *, announce: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if announce:
        response.content_length = size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = b" " * MIB
    try:
        for _ in range(size // MIB):
            await response.write(chunk)
    except (ConnectionError, RuntimeError):
        pass  # the client hung up: exactly what a capped reader does
    return response


def _app(state: Hostile) -> web.Application:
    app = web.Application(client_max_size=4 * MIB)
    app.router.add_get("/v2/manage/namespaces/{ns}/repos/{repo}/tags/{tag}", state.tag)
    app.router.add_post("/v3/auth/tokens", state.login)
    return app


@asynccontextmanager
async def running_hostile(
    state: Hostile | None = None, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Hostile]:
    """The hostile server on 127.0.0.1 in this event loop; ``.url`` is its endpoint
    (``https://`` when ``tls`` is given)."""
    state = state or Hostile()
    # handler_cancellation: a handler whose client hung up (a stalled login the
    # crawler gave up on, a stream it stopped reading) ends at once.
    runner = web.AppRunner(_app(state), handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    scheme = "https" if tls else "http"
    state.url = f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


@contextmanager
def hostile_in_thread(state: Hostile | None = None) -> Iterator[Hostile]:
    """The hostile server in a thread of its own, for tests that run the crawler as a process."""
    state = state or Hostile()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None

    async def serve() -> None:
        nonlocal stop, loop
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        async with running_hostile(state):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the hostile server did not start")
    try:
        yield state
    finally:
        assert loop is not None
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
