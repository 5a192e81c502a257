"""The programs swr-crawler is compared with, each run as its own process.

``python -m bench.contenders NAME --endpoint URL --targets FILE --concurrency N
[--limit K]`` crawls the targets (the first ``K`` when given) and prints one
JSON line: ``{"rows", "errors", "throttled", "elapsed"}``. ``elapsed`` runs
from the first request to the last answer, so interpreter start-up and imports
are not in the rate (they are in the CPU time the harness measures, as they
are for swr-crawler).

* ``sdk-threads``: what a user would write around the official SDK: one
  ``SwrClient`` (AK/SK from ``CLOUD_SDK_AK``/``CLOUD_SDK_SK``) shared by a
  ``ThreadPoolExecutor`` with ``concurrency`` threads calling
  ``show_repo_tag``. The only setting changed from the SDK's defaults is the
  connection pool (``pool_maxsize`` = threads), as its docs suggest for
  threads; without it urllib3 drops connections above ten.
* ``sdk-async``: the SDK's ``SwrAsyncClient`` (its own pool of 8 threads),
  ``show_repo_tag_async`` with at most ``concurrency`` calls outstanding.
* ``aiohttp``: the ceiling: one aiohttp session, ``concurrency`` tasks that
  only send the request and discard the answer. It signs every request (the
  sandbox then does the same work as for the others) with
  :func:`crawler.http.signer.sign`, a pure function of the request.
* ``aiohttp-json``: the same loop, but it keeps what it fetched: each 200's
  body parsed with orjson and the object kept in a list, the least a script
  that wants the data does (no manifest facts, no Parquet).

None of them retries or paces itself: they are what a straightforward script
does, so a rate-limited server answers them with 429s, which are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any
from urllib.parse import urlsplit


def read_targets(path: str, limit: int | None) -> list[tuple[str, str, str]]:
    """``(namespace, repository with $, tag)`` per line of a text targets file."""
    with open(path, encoding="utf-8") as lines:
        return [_split(line) for line in islice(_nonblank(lines), limit)]


def _nonblank(lines: Iterator[str]) -> Iterator[str]:
    return (line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _split(line: str) -> tuple[str, str, str]:
    namespace, _, rest = line.partition("/")
    repository, _, tag = rest.rpartition(":")
    return namespace, repository.replace("/", "$"), tag


class Tally:
    """Outcome counts, shared by threads."""

    def __init__(self) -> None:
        self.rows = 0
        self.errors = 0
        self.throttled = 0
        self._lock = threading.Lock()

    def count(self, status: int) -> None:
        with self._lock:
            if status == 200:
                self.rows += 1
            else:
                self.errors += 1
                if status == 429:
                    self.throttled += 1


def _credentials() -> tuple[str, str]:
    return os.environ["CLOUD_SDK_AK"], os.environ["CLOUD_SDK_SK"]


def _sdk_client(endpoint: str, threads: int, *, asynchronous: bool) -> Any:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkswr.v2 import SwrAsyncClient, SwrClient

    ak, sk = _credentials()
    http = HttpConfig.get_default_config()
    http.pool_connections = threads
    http.pool_maxsize = threads
    builder = (SwrAsyncClient if asynchronous else SwrClient).new_builder()
    return (
        builder.with_http_config(http)
        .with_credentials(BasicCredentials(ak, sk))
        .with_endpoints([endpoint])
        .build()
    )


def _sdk_failures() -> tuple[type[Exception], ...]:
    """What a failed SDK call raises: its own exceptions, and ``requests``' errors.

    The synchronous client turns urllib3's "too many 429 error responses" into a
    ``ClientRequestException`` with status 429; the asynchronous one hands the raw
    ``requests.exceptions.RetryError`` to the caller instead.
    """
    from huaweicloudsdkcore.exceptions.exceptions import SdkException
    from requests.exceptions import RequestException

    return SdkException, RequestException


def _sdk_status(exc: Exception) -> int:
    """The HTTP status of a failed SDK call (429 for a throttled one, 0 when none)."""
    status = int(getattr(exc, "status_code", 0) or 0)
    if not status and "too many 429 error responses" in str(exc):
        return 429
    return status


def run_sdk_threads(endpoint: str, targets: list[tuple[str, str, str]], threads: int) -> Tally:
    """The official SwrClient in a ThreadPoolExecutor."""
    from huaweicloudsdkswr.v2 import ShowRepoTagRequest

    client = _sdk_client(endpoint, threads, asynchronous=False)
    failures = _sdk_failures()
    tally = Tally()

    def fetch(target: tuple[str, str, str]) -> None:
        namespace, repository, tag = target
        request = ShowRepoTagRequest(namespace=namespace, repository=repository, tag=tag)
        try:
            client.show_repo_tag(request)
        except failures as exc:
            tally.count(_sdk_status(exc))
        else:
            tally.count(200)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(fetch, targets):
            pass
    return tally


def run_sdk_async(endpoint: str, targets: list[tuple[str, str, str]], window: int) -> Tally:
    """The official SwrAsyncClient, at most ``window`` calls outstanding."""
    from huaweicloudsdkswr.v2 import ShowRepoTagRequest

    client = _sdk_client(endpoint, window, asynchronous=True)
    failures = _sdk_failures()
    tally = Tally()
    pending: list[Any] = []

    def settle(future: Any) -> None:
        try:
            future.result()
        except failures as exc:
            tally.count(_sdk_status(exc))
        else:
            tally.count(200)

    for namespace, repository, tag in targets:
        request = ShowRepoTagRequest(namespace=namespace, repository=repository, tag=tag)
        pending.append(client.show_repo_tag_async(request))
        if len(pending) >= window:
            settle(pending.pop(0))
    for future in pending:
        settle(future)
    return tally


def run_aiohttp(
    endpoint: str, targets: list[tuple[str, str, str]], concurrency: int, *, keep: bool = False
) -> Tally:
    """The ceiling: signed GETs, answers read and discarded (``keep``: parsed and kept)."""
    import aiohttp
    import orjson

    from crawler.http.signer import sign

    ak, sk = _credentials()
    host = urlsplit(endpoint).netloc
    base = {"Content-Type": "application/json", "User-Agent": "bench-ceiling"}
    tally = Tally()
    kept: list[Any] = []

    async def main() -> None:
        queue = iter(targets)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                for namespace, repository, tag in queue:
                    path = f"/v2/manage/namespaces/{namespace}/repos/{repository}/tags/{tag}"
                    headers = sign(ak, sk, "GET", host, path, (), base, b"", datetime.now(UTC))
                    async with session.get(endpoint + path, headers=headers) as response:
                        body = await response.read()
                        tally.count(response.status)
                        if keep and response.status == 200:
                            kept.append(orjson.loads(body))

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())
    return tally


RUNNERS: dict[str, Callable[[str, list[tuple[str, str, str]], int], Tally]] = {
    "sdk-threads": run_sdk_threads,
    "sdk-async": run_sdk_async,
    "aiohttp": run_aiohttp,
    "aiohttp-json": partial(run_aiohttp, keep=True),
}


def main(argv: list[str] | None = None) -> int:
    """Run one contender and print its JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.contenders")
    parser.add_argument("name", choices=sorted(RUNNERS))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--targets", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    targets = read_targets(args.targets, args.limit)
    started = time.perf_counter()
    tally = RUNNERS[args.name](args.endpoint, targets, args.concurrency)
    elapsed = time.perf_counter() - started
    result = {
        "rows": tally.rows,
        "errors": tally.errors,
        "throttled": tally.throttled,
        "elapsed": elapsed,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
