"""The worker pool's decisions, driven through a fake at the HTTP seam.

The end-to-end tests prove the same over real sockets; these pin down the
retry/stop logic exactly and fast (backoff 0, no network).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

import anyio
import orjson
import pytest

from crawler.crawl.attempt import Attempts
from crawler.crawl.control import RunControl
from crawler.crawl.intake import Intake
from crawler.crawl.limits import RateLimiter
from crawler.crawl.pool import Crawler
from crawler.crawl.retry import Failure, RetryPolicy, classify
from crawler.errors import ErrorKind, TransportError
from crawler.http.response import Response, error_fields
from crawler.output.rows import TagRow
from crawler.run.stats import RunStats
from crawler.targets import InvalidTarget, Target, parse_reference
from tests.fakes import ListSink

OK_BODY = orjson.dumps(
    {
        "id": 1,
        "repo_id": 2,
        "tag": "v1",
        "digest": "sha256:ab",
        "schema": 2,
        "tag_type": 0,
        "size": 10,
        "is_trusted": False,
        "created": "2018-07-06T06:18:55Z",
        "manifest": "",
    }
)


class ScriptedFetcher:
    """Answers each path from a script of statuses/exceptions; 200 once the script is used up."""

    def __init__(self, scripts: dict[str, list[object]]) -> None:
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.peak = 0

    async def fetch_tag(self, request_path: str) -> Response:
        self.calls[request_path] += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await anyio.sleep(0)  # let other workers run: makes concurrency observable
            script = self.scripts.get(request_path, [])
            step = script.pop(0) if script else 200
            if isinstance(step, BaseException):
                raise step
            status, retry_after = step if isinstance(step, tuple) else (step, None)
            if status == 200:
                return Response(200, OK_BODY, retry_after, None)
            return Response(int(status), b"", retry_after, None, error_code="E", error_msg="m")
        finally:
            self.in_flight -= 1


def targets(n: int) -> list[Target]:
    return [Target("ns", "team/app", f"t{i}") for i in range(n)]


async def run_pool(
    items: Iterable[Target | InvalidTarget],
    fetcher: ScriptedFetcher,
    *,
    concurrency: int = 4,
    max_attempts: int = 3,
    policy: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    control: RunControl | None = None,
) -> tuple[ListSink, RunStats, RunControl]:
    """Crawl ``items`` with ``fetcher`` through the real attempt loop (by default: no rate
    limit, ``max_attempts`` with no backoff); the sink, counters and control it ended with."""
    sink, stats, control = ListSink(), RunStats(), control or RunControl()
    attempts = Attempts(
        limiter=limiter or RateLimiter(0),
        policy=policy or RetryPolicy(max_attempts, 0.0, 0.0),
        concurrency=concurrency,
        stats=stats,
        control=control,
        rng=random.Random(1),
    )
    crawler = Crawler(
        fetcher=fetcher, sink=sink, attempts=attempts, concurrency=concurrency, stats=stats
    )
    await crawler.run(Intake(items, stats))
    return sink, stats, control


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("script", "kind", "attempts"),
    [
        ([404], "not_found", 1),
        ([400], "client_error", 1),
        ([403], "forbidden", 1),
        ([429, 429, 429], "throttled", 3),
        ([500, 502, 503, 504], "server_error", 3),
        ([TransportError(ErrorKind.TIMEOUT, "t")] * 3, "timeout", 3),
        ([TransportError(ErrorKind.NETWORK, "reset")] * 3, "network", 3),
    ],
)
async def test_each_fault_ends_in_its_kind(script: list[object], kind: str, attempts: int) -> None:
    """Every fault-table row ends as the stated error kind after the stated attempts."""
    target = targets(1)[0]
    fetcher = ScriptedFetcher({target.request_path: script})
    sink, stats, _ = await run_pool([target], fetcher)
    assert sink.tags == []
    (row,) = sink.errors
    assert (row["error_kind"], row["attempts"]) == (kind, attempts)
    assert fetcher.calls[target.request_path] == attempts
    assert stats.requests == attempts


@pytest.mark.anyio
async def test_transient_then_success_counts_every_attempt() -> None:
    """A 503 then a 200 yields a tags row with attempts == 2."""
    target = targets(1)[0]
    fetcher = ScriptedFetcher({target.request_path: [503]})
    sink, stats, _ = await run_pool([target], fetcher)
    assert [r["attempts"] for r in sink.tags] == [2]
    assert stats.retries == 1


@pytest.mark.anyio
async def test_decode_error_on_200_is_retried() -> None:
    """A 200 whose body is not JSON is retried; when it never parses it ends as decode."""
    target = targets(1)[0]

    class Garbage(ScriptedFetcher):
        async def fetch_tag(self, request_path: str) -> Response:
            self.calls[request_path] += 1
            return Response(200, b'{"id": 1, "tru', None, None)

    fetcher = Garbage({})
    sink, _, _ = await run_pool([target], fetcher)
    assert [(r["error_kind"], r["http_status"], r["attempts"]) for r in sink.errors] == [
        ("decode", 200, 3)
    ]


@pytest.mark.anyio
async def test_401_stops_the_run_within_the_in_flight_window() -> None:
    """After a 401 no new request starts: requests <= concurrency, the rest is left unrecorded."""
    items = targets(200)
    fetcher = ScriptedFetcher({t.request_path: [401] for t in items})
    sink, stats, control = await run_pool(items, fetcher, concurrency=4)
    assert control.stop_reason == "unauthorized"
    assert 1 <= stats.requests <= 4
    assert {r["error_kind"] for r in sink.errors} == {"unauthorized"}
    assert len(sink.errors) + len(sink.tags) < len(items)


@pytest.mark.anyio
async def test_concurrency_bound_holds() -> None:
    """No more than `concurrency` fetches run at once, even with retries."""
    items = targets(100)
    fetcher = ScriptedFetcher({t.request_path: [500] for t in items[::3]})
    sink, _, _ = await run_pool(items, fetcher, concurrency=5)
    assert fetcher.peak <= 5
    assert len(sink.tags) == 100


@pytest.mark.anyio
async def test_invalid_duplicate_and_valid_each_once() -> None:
    """Invalid lines become invalid_target rows without a request; duplicates are dropped."""
    raw = ["ns/a:v1", "ns/a:v1", "BAD/a:v1", "ns/b", "ns/b:v2"]
    items = [parse_reference(x) for x in raw]
    fetcher = ScriptedFetcher({})
    sink, stats, _ = await run_pool(items, fetcher)
    assert sorted(r["tag"] for r in sink.tags) == ["v1", "v2"]
    assert sorted(str(r["error_kind"]) for r in sink.errors) == ["invalid_target"] * 2
    assert all(r["attempts"] == 0 for r in sink.errors)
    assert stats.duplicates == 1
    assert sum(fetcher.calls.values()) == 2


@pytest.mark.anyio
async def test_429_with_retry_after_is_retried_and_counted() -> None:
    """A 429 with Retry-After: 0 is retried: the row has attempts == 2, one 429 is counted."""
    target = targets(1)[0]
    fetcher = ScriptedFetcher({target.request_path: [(429, "0")]})
    sink, stats, _ = await run_pool([target], fetcher)
    assert [r["attempts"] for r in sink.tags] == [2]
    assert stats.throttled == 1


@pytest.mark.anyio
async def test_stop_leaves_remaining_targets_unrecorded() -> None:
    """A stop before the crawl takes no target: nothing requested, nothing recorded."""
    fetcher = ScriptedFetcher({})
    control = RunControl()
    control.stop("signal SIGTERM")
    sink, _, _ = await run_pool(targets(50), fetcher, concurrency=2, control=control)
    assert sum(fetcher.calls.values()) == 0
    assert sink.tags == sink.errors == []


def test_intake_shards_partition_the_input() -> None:
    """Shards 0..N-1 of the same input are disjoint and cover every target."""
    items = targets(500)
    seen: defaultdict[str, int] = defaultdict(int)
    for index in range(4):
        for batch in Intake(items, RunStats(), shard=(index, 4)).batches(64):
            for item in batch:
                seen[item.key] += 1
    assert set(seen) == {t.key for t in items}
    assert set(seen.values()) == {1}


NOW = datetime(2026, 11, 27, tzinfo=UTC)
TARGET = Target("ns", "team/app", "v1")


def test_classify_200_is_a_row_with_the_attempts() -> None:
    """A 200 with a JSON object becomes a tags row carrying the attempt count."""
    row = classify(Response(200, OK_BODY, None, None), TARGET, 3, NOW)
    assert isinstance(row, TagRow)
    assert (row.repository, row.attempts, row.fetched_at) == ("team/app", 3, NOW)


@pytest.mark.parametrize(
    ("status", "body", "retry_after", "expected"),
    [
        (200, b"{not json", None, Failure(ErrorKind.DECODE, 200, None, None)),
        (
            404,
            b'{"error_code":"SVCSTG.SWR.4040010","error_msg":"Image not found"}',
            None,
            Failure(ErrorKind.NOT_FOUND, 404, "SVCSTG.SWR.4040010", "Image not found"),
        ),
        (
            429,
            b'{"error_code":"APIG.0308","error_msg":"slow down"}',
            "2",
            Failure(ErrorKind.THROTTLED, 429, "APIG.0308", "slow down", 2.0),
        ),
        (
            429,
            b"",
            "Fri, 27 Nov 2026 00:00:05 GMT",
            Failure(ErrorKind.THROTTLED, 429, None, None, 5.0),
        ),
        (
            503,
            b"<html>busy</html>",
            "7",
            Failure(ErrorKind.SERVER_ERROR, 503, None, "<html>busy</html>"),
        ),
        (401, b"{}", None, Failure(ErrorKind.UNAUTHORIZED, 401, None, "{}")),
    ],
)
def test_classify_failures(
    status: int, body: bytes, retry_after: str | None, expected: Failure
) -> None:
    """Each status maps to its kind, the client's code/message, and (429 only) Retry-After."""
    code, message = (None, None) if status == 200 else error_fields(body)
    response = Response(status, body, retry_after, None, error_code=code, error_msg=message)
    got = classify(response, TARGET, 1, NOW)
    assert isinstance(got, Failure)
    if expected.kind is ErrorKind.DECODE:
        assert (got.kind, got.http_status) == (ErrorKind.DECODE, 200)
        assert got.error_msg
    else:
        assert got == expected


def test_classify_passes_transport_failures_through() -> None:
    """A failure without a response (timeout, reset) is returned as it is."""
    failure = Failure(ErrorKind.TIMEOUT, error_msg="no answer")
    assert classify(failure, TARGET, 1, NOW) is failure


class FakeClock:
    """The limiter's clock and sleep: a sleep records its length and moves time forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await anyio.sleep(0)


@pytest.mark.anyio
async def test_retry_after_is_capped_by_backoff_max_and_pauses_everyone() -> None:
    """Retry-After: 3600 with --backoff-max 2 holds every request 2 s, not an hour."""
    items = targets(3)
    clock = FakeClock()
    sent_at: list[float] = []

    class Timed(ScriptedFetcher):
        async def fetch_tag(self, request_path: str) -> Response:
            sent_at.append(clock.now)
            return await super().fetch_tag(request_path)

    fetcher = Timed({items[0].request_path: [(429, "3600")]})
    limiter = RateLimiter(0, clock=clock.clock, sleep=clock.sleep)
    with anyio.fail_after(5):
        sink, _, _ = await run_pool(
            items, fetcher, concurrency=1, policy=RetryPolicy(5, 0.0, 2.0), limiter=limiter
        )
    assert len(sink.tags) == 3
    assert sent_at[0] == 0.0
    assert all(t == 2.0 for t in sent_at[1:]), sent_at  # the other targets waited too
    assert len(sent_at) == 4
    assert sum(clock.slept) == 2.0


@pytest.mark.anyio
async def test_a_target_in_backoff_holds_no_slot() -> None:
    """With one slot, a target sleeping a long backoff does not keep another from its request."""
    failing, healthy = targets(2)
    order: list[str] = []
    control = RunControl()

    class Recording(ScriptedFetcher):
        async def fetch_tag(self, request_path: str) -> Response:
            order.append(request_path)
            response = await super().fetch_tag(request_path)
            if request_path == healthy.request_path:
                control.stop("test done")  # wakes the backoff sleep at once
            return response

    fetcher = Recording({failing.request_path: [503]})
    # random.Random(1)'s first full-jitter draw over [0, 60] s is about 8 s.
    policy = RetryPolicy(5, 60.0, 60.0)
    with anyio.fail_after(5):  # a slot held through the backoff would block here
        sink, stats, _ = await run_pool(
            [failing, healthy], fetcher, concurrency=1, policy=policy, control=control
        )
    assert order == [failing.request_path, healthy.request_path]
    assert [r["tag"] for r in sink.tags] == [healthy.tag]
    assert stats.retries == 1
