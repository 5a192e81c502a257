"""Tests for the rate limits (crawler.crawl.limits) and the backoff maths (crawler.crawl.retry).

No real time passes: the pure classes take ``now``, and the async limiter runs
on :class:`VirtualTime`, a fake clock whose ``sleep`` jumps time forward once
every task under test is asleep.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.crawl.limits import (
    AdaptiveRate,
    GatewayLimit,
    RateLimiter,
    TokenBucket,
)
from crawler.crawl.retry import backoff_delay, parse_retry_after

# --------------------------------------------------------------------------- fakes


class VirtualTime:
    """A fake monotonic clock plus a ``sleep`` that advances it, for many tasks at once.

    :meth:`run` runs tasks concurrently; whenever all of them are asleep it jumps
    the clock to the earliest wake-up and wakes that sleeper. Time never moves
    while any task can still run, so concurrent sleeps overlap as they would in
    real time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()
        self._cancelled: set[anyio.Event] = set()
        self._asleep = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        event = anyio.Event()
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), event))
        self._asleep += 1
        try:
            await event.wait()
        except BaseException:
            if not event.is_set():  # cancelled while asleep
                self._asleep -= 1
                self._cancelled.add(event)
            raise

    def _wake_next(self) -> None:
        while True:
            wake, _, event = heapq.heappop(self._timers)
            if event in self._cancelled:
                continue
            self.now = max(self.now, wake)
            self._asleep -= 1
            event.set()
            return

    async def run(self, *tasks: Callable[[], Awaitable[None]]) -> None:
        pending = len(tasks)

        def counted(task: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            async def wrapper() -> None:
                nonlocal pending
                try:
                    await task()
                finally:
                    pending -= 1

            return wrapper

        async with anyio.create_task_group() as tg:
            for task in tasks:
                tg.start_soon(counted(task))
            spins = 0
            while pending:
                if self._asleep == pending:
                    self._wake_next()
                    spins = 0
                else:
                    spins += 1
                    assert spins < 10_000, "a task is blocked on something other than sleep"
                    await anyio.lowlevel.checkpoint()


async def forbidden_sleep(delay: float) -> None:
    raise AssertionError(f"slept {delay}")


def acquiring(
    vt: VirtualTime, limiter: RateLimiter, times: int, grants: list[float]
) -> Callable[[], Awaitable[None]]:
    """A task for :meth:`VirtualTime.run` that acquires ``times`` tokens one after the other,
    appending the fake time of each grant to ``grants``."""

    async def task() -> None:
        for _ in range(times):
            await limiter.acquire()
            grants.append(vt.now)

    return task


# --------------------------------------------------------------------------- backoff


@given(
    attempt=st.integers(min_value=1, max_value=100_000),
    initial=st.floats(min_value=0.0, max_value=1e6),
    maximum=st.floats(min_value=0.0, max_value=1e6),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_within_full_jitter_bounds(
    attempt: int, initial: float, maximum: float, seed: int
) -> None:
    """Every delay is in [0, min(maximum, initial * 2**(attempt-1))], for any attempt."""
    delay = backoff_delay(attempt, initial, maximum, random.Random(seed))
    assert 0.0 <= delay <= maximum
    if attempt <= 60:
        assert delay <= initial * 2 ** (attempt - 1)


def test_backoff_huge_attempt_does_not_overflow() -> None:
    """Attempt numbers far past float range saturate at the maximum instead of raising."""
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 30.0, rng) for n in (1025, 10**6, 10**30)]
    assert all(0.0 <= d <= 30.0 for d in delays)
    assert max(delays) > 1.0  # the cap is the maximum, not something tiny


def test_backoff_mean_grows_then_caps() -> None:
    """The mean delay doubles per attempt (cap/2 of full jitter) until it caps at maximum/2."""
    rng = random.Random(42)
    means = [
        statistics.fmean(backoff_delay(n, 0.5, 30.0, rng) for _ in range(4000))
        for n in range(1, 12)
    ]
    expected = [min(30.0, 0.5 * 2 ** (n - 1)) / 2 for n in range(1, 12)]
    for mean, want in zip(means, expected, strict=True):
        assert mean == pytest.approx(want, rel=0.06)
    assert all(a < b for a, b in itertools.pairwise(means[:7]))  # 0.25 ... 15
    assert all(m == pytest.approx(15.0, rel=0.06) for m in means[6:])


def test_backoff_seeded_rng_is_reproducible() -> None:
    """The same seed gives the same delays; another seed gives others."""

    def run(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff_delay(n, 0.5, 30.0, rng) for n in range(1, 10)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_backoff_rejects_attempt_zero() -> None:
    """Attempts are 1-based: 0 is a caller bug, reported, not silently treated as 1."""
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, 0.5, 30.0, random.Random(0))


# --------------------------------------------------------------------------- Retry-After

NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0", 0.0), ("1.5", 1.5), (" 120 ", 120.0), ("-5", 0.0)],
)
def test_retry_after_delta_seconds(value: str, expected: float) -> None:
    """Delta-seconds parse to seconds (fractions tolerated, negatives clamped to 0)."""
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_http_date() -> None:
    """An IMF-fixdate 30 s after now means wait 30 s."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == pytest.approx(30.0)


def test_retry_after_past_date_is_zero() -> None:
    """A date already past means retry now, not a negative wait."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", NOW) == 0.0


def test_retry_after_naive_now_is_utc() -> None:
    """A naive ``now`` is read as UTC rather than crashing on aware-minus-naive."""
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", naive) == pytest.approx(30.0)


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "3 seconds", "nan", "inf", "1e3", "Wed, 99 Foo 2015"]
)
def test_retry_after_garbage_is_none(value: str | None) -> None:
    """Absent or unparseable values give None (the caller falls back to backoff)."""
    assert parse_retry_after(value, NOW) is None


@given(delta=st.integers(min_value=-(10**7), max_value=10**7))
def test_retry_after_http_date_roundtrip(delta: int) -> None:
    """For any whole-second offset, the formatted HTTP-date parses back to max(0, offset)."""
    header = format_datetime(NOW + timedelta(seconds=delta), usegmt=True)
    assert parse_retry_after(header, NOW) == max(0.0, float(delta))


@given(value=st.text(max_size=40))
def test_retry_after_never_raises(value: str) -> None:
    """Any header text yields None or a finite wait >= 0, never an exception."""
    result = parse_retry_after(value, NOW)
    assert result is None or (math.isfinite(result) and result >= 0.0)


# --------------------------------------------------------------------------- TokenBucket


def grant_times(bucket: TokenBucket, arrivals: list[float]) -> list[float]:
    return [t + bucket.reserve(t) for t in arrivals]


def test_bucket_burst_one_spaces_from_the_second_request() -> None:
    """burst=1: the first request goes at once, the next ones 1/rate apart."""
    bucket = TokenBucket(rate=4.0, burst=1, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(0.25)
    assert bucket.reserve(0.0) == pytest.approx(0.5)


def test_bucket_burst_five_at_once_then_spaced() -> None:
    """burst=5: exactly five go at start-up, then one per 1/rate."""
    bucket = TokenBucket(rate=10.0, burst=5, now=0.0)
    delays = [bucket.reserve(0.0) for _ in range(8)]
    assert delays[:5] == [0.0] * 5
    assert delays[5:] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_long_run_rate() -> None:
    """N simultaneous reservations end (N - burst)/rate later: the long-run rate is `rate`."""
    bucket = TokenBucket(rate=20.0, burst=3, now=50.0)
    last = max(grant_times(bucket, [50.0] * 1000))
    assert last - 50.0 == pytest.approx((1000 - 3) / 20.0)


def test_bucket_idle_time_does_not_bank_tokens() -> None:
    """After a long idle spell only `burst` tokens are available, not rate * idle."""
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    bucket.reserve(0.0)
    delays = [bucket.reserve(3600.0) for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.0, 0.1, 0.2])


@given(
    rate=st.floats(min_value=0.01, max_value=1000.0),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=60),
)
def test_bucket_never_exceeds_burst_plus_rate_times_window(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """For any arrivals, any window of length w holds <= burst + rate*w grants; grants are FIFO."""
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    arrivals = list(itertools.accumulate(gaps))
    grants = grant_times(bucket, arrivals)
    assert all(g >= a for g, a in zip(grants, arrivals, strict=True))
    assert all(a <= b for a, b in itertools.pairwise(grants))
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            window = grants[j] - grants[i]
            assert j - i + 1 <= burst + rate * window + 1e-6


def test_bucket_set_rate_lower_takes_effect() -> None:
    """After set_rate the debt already taken is repaid, and new tokens spaced, at the new rate."""
    bucket = TokenBucket(rate=10.0, burst=1, now=0.0)
    assert grant_times(bucket, [0.0, 0.0]) == pytest.approx([0.0, 0.1])
    bucket.set_rate(2.0, now=0.0)
    assert bucket.rate == 2.0
    # two tokens taken at t=0 cost 1.0 s at 2/s: the next is due at 1.0, then every 0.5 s
    assert grant_times(bucket, [0.0, 0.0]) == pytest.approx([1.0, 1.5])


def test_bucket_set_rate_lower_does_not_refill() -> None:
    """Lowering the rate of an emptied bucket keeps it empty: no burst right after a 429."""
    bucket = TokenBucket(rate=10.0, burst=5, now=0.0)
    grant_times(bucket, [0.0] * 5)
    bucket.set_rate(5.0, now=0.0)
    assert bucket.reserve(0.0) == pytest.approx(0.2)


def test_bucket_set_rate_higher_keeps_queue_order() -> None:
    """Raising the rate while callers wait never schedules a newcomer before them."""
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    queued = grant_times(bucket, [0.0] * 5)
    assert queued == pytest.approx([0, 1, 2, 3, 4])
    bucket.set_rate(10.0, now=0.0)
    later = grant_times(bucket, [0.0, 0.0])
    assert later == pytest.approx([4.1, 4.2])


def test_bucket_hold_until_resumes_with_one_token() -> None:
    """A hold grants nothing before its deadline, then one token, then spaced (no burst)."""
    bucket = TokenBucket(rate=10.0, burst=4, now=0.0)
    bucket.hold_until(30.0)
    assert grant_times(bucket, [1.0, 1.0, 1.0]) == pytest.approx([30.0, 30.1, 30.2])


def test_bucket_set_rate_does_not_stretch_a_hold() -> None:
    """Halving the rate during a pause does not double the pause."""
    bucket = TokenBucket(rate=10.0, burst=1, now=0.0)
    bucket.hold_until(30.0)
    bucket.set_rate(5.0, now=0.0)
    assert bucket.reserve(0.0) == pytest.approx(30.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (math.inf, 1), (1.0, 0)])
def test_bucket_rejects_bad_parameters(rate: float, burst: int) -> None:
    """A zero/negative/infinite rate or a burst below 1 is refused."""
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate=rate, burst=burst, now=0.0)


# --------------------------------------------------------------------------- AdaptiveRate


def test_adaptive_decreases_on_throttle() -> None:
    """A 429 halves the rate."""
    adaptive = AdaptiveRate(ceiling=20.0, now=0.0)
    assert adaptive.on_throttled(1.0) == pytest.approx(10.0)
    assert adaptive.current == pytest.approx(10.0)


def test_adaptive_one_decrease_per_cooldown() -> None:
    """A burst of 429s within the cooldown lowers the rate once, the next window once more."""
    adaptive = AdaptiveRate(ceiling=20.0, now=0.0, cooldown=2.0)
    rates = [adaptive.on_throttled(10.0 + i * 0.04) for i in range(50)]  # 10.00 .. 11.96
    assert all(r == pytest.approx(10.0) for r in rates)
    after = adaptive.on_throttled(12.0)
    assert after < 6.0


def test_adaptive_never_below_floor() -> None:
    """Sustained throttling stops at the floor."""
    adaptive = AdaptiveRate(ceiling=20.0, floor=1.0, now=0.0)
    rates = [adaptive.on_throttled(t * 2.0) for t in range(30)]
    assert min(rates) == 1.0
    assert rates[-1] == 1.0


def test_adaptive_default_floor() -> None:
    """The default floor is one request per 5 s (Huawei's longest suggested wait)."""
    # ceiling 5: the recovery between 429s (5/120 per s) is too small to hold the rate up
    adaptive = AdaptiveRate(ceiling=5.0, now=0.0)
    for t in range(40):
        adaptive.on_throttled(t * 2.0)
    assert adaptive.current == pytest.approx(0.2)
    assert AdaptiveRate(ceiling=0.1).floor == 0.1  # never above the ceiling


def test_adaptive_recovers_gradually_to_ceiling_and_not_above() -> None:
    """After a decrease the rate climbs linearly (half to full in 60 s), then stays at ceiling."""
    adaptive = AdaptiveRate(ceiling=20.0, now=0.0)
    adaptive.on_throttled(0.0)
    one_second = adaptive.on_success(1.0)
    assert 10.0 < one_second < 10.5  # not at once
    assert adaptive.on_success(30.0) == pytest.approx(15.0)
    assert adaptive.on_success(60.0) == pytest.approx(20.0)
    assert adaptive.on_success(10_000.0) == 20.0


@given(
    events=st.lists(
        st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=30.0)), max_size=80
    ),
    ceiling=st.floats(min_value=0.5, max_value=500.0),
)
def test_adaptive_stays_between_floor_and_ceiling(
    events: list[tuple[bool, float]], ceiling: float
) -> None:
    """Under any sequence of 429s and 200s the rate stays within [floor, ceiling]."""
    adaptive = AdaptiveRate(ceiling=ceiling, now=0.0)
    now = 0.0
    for throttled, gap in events:
        now += gap
        rate = adaptive.on_throttled(now) if throttled else adaptive.on_success(now)
        assert adaptive.floor <= rate <= ceiling


# --------------------------------------------------------------------------- RateLimiter


@pytest.mark.anyio
async def test_limiter_n_acquires_take_n_over_rate() -> None:
    """100 acquires at 20/s, burst 1, take 99/20 s of fake time."""
    vt = VirtualTime()
    limiter = RateLimiter(20.0, clock=vt.clock, sleep=vt.sleep)
    start = vt.now
    await vt.run(acquiring(vt, limiter, 100, []))
    assert vt.now - start == pytest.approx(99 / 20)


@pytest.mark.anyio
async def test_limiter_shared_by_concurrent_workers() -> None:
    """Eight workers share one budget: grants are spaced 1/rate apart overall, after the burst."""
    vt = VirtualTime()
    limiter = RateLimiter(10.0, burst=3, clock=vt.clock, sleep=vt.sleep)
    grants: list[float] = []
    await vt.run(*[acquiring(vt, limiter, 5, grants)] * 8)
    assert len(grants) == 40
    assert grants[:3] == [1000.0] * 3
    gaps = [b - a for a, b in itertools.pairwise(grants[2:])]
    assert gaps == pytest.approx([0.1] * len(gaps))


@pytest.mark.anyio
async def test_limiter_no_wait_does_not_sleep() -> None:
    """A token available now is granted without calling sleep at all (not even sleep(0))."""
    limiter = RateLimiter(10.0, burst=5, clock=lambda: 0.0, sleep=forbidden_sleep)
    for _ in range(5):
        await limiter.acquire()


@pytest.mark.anyio
async def test_limiter_rate_zero_never_sleeps() -> None:
    """rate 0 is unlimited: thousands of acquires, throttled() included, never sleep."""
    limiter = RateLimiter(0.0, clock=lambda: 0.0, sleep=forbidden_sleep)
    for _ in range(5000):
        await limiter.acquire()
    limiter.throttled()
    limiter.succeeded()
    await limiter.acquire()
    assert limiter.current_rate == 0.0


@pytest.mark.anyio
async def test_limiter_rate_zero_still_honours_pause() -> None:
    """Unlimited is still subject to Retry-After: acquire waits until the deadline."""
    vt = VirtualTime()
    limiter = RateLimiter(0.0, clock=vt.clock, sleep=vt.sleep)
    limiter.pause_until(vt.now + 7.0)
    await vt.run(limiter.acquire)
    assert vt.now == pytest.approx(1007.0)
    await limiter.acquire()  # the pause is over: no sleep
    assert len(vt.sleeps) == 1


@pytest.mark.anyio
async def test_limiter_pause_holds_every_acquire_until_deadline() -> None:
    """A Retry-After pause holds all workers, sleeping ones included, then resumes spaced."""
    vt = VirtualTime()
    limiter = RateLimiter(10.0, clock=vt.clock, sleep=vt.sleep)
    grants: list[float] = []
    pause_at, deadline = 1000.25, 1005.25

    async def gateway() -> None:
        await vt.sleep(pause_at - vt.now)
        limiter.pause_until(deadline)

    await vt.run(*[acquiring(vt, limiter, 4, grants)] * 5, gateway)
    assert len(grants) == 20
    assert grants[:3] == pytest.approx([1000.0, 1000.1, 1000.2])
    assert all(g <= pause_at or g >= deadline - 1e-9 for g in grants)
    resumed = [g for g in grants if g > pause_at]
    assert resumed[0] == pytest.approx(deadline)
    gaps = [b - a for a, b in itertools.pairwise(resumed)]
    assert min(gaps) == pytest.approx(0.1)  # no herd at the deadline


@pytest.mark.anyio
async def test_limiter_pause_for_uses_its_own_clock() -> None:
    """pause_for(s) holds the next acquire s seconds past the limiter's clock."""
    vt = VirtualTime()
    limiter = RateLimiter(10.0, clock=vt.clock, sleep=vt.sleep)
    limiter.pause_for(3.0)
    await vt.run(limiter.acquire)
    assert vt.now == pytest.approx(1003.0)


@pytest.mark.anyio
async def test_limiter_throttled_lowers_rate_and_spacing() -> None:
    """throttled() halves the rate once per cooldown and the spacing follows."""
    vt = VirtualTime()
    limiter = RateLimiter(10.0, clock=vt.clock, sleep=vt.sleep)
    await limiter.acquire()
    limiter.throttled()
    limiter.throttled()  # same overload: ignored within the cooldown
    assert limiter.current_rate == pytest.approx(5.0)
    grants: list[float] = []
    await vt.run(acquiring(vt, limiter, 3, grants))
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert gaps == pytest.approx([0.2, 0.2], abs=0.01)


@pytest.mark.anyio
async def test_limiter_succeeded_recovers_slowly() -> None:
    """succeeded() raises the rate gradually after a throttle, up to the configured rate."""
    vt = VirtualTime()
    limiter = RateLimiter(10.0, clock=vt.clock, sleep=vt.sleep)
    limiter.throttled()
    vt.now += 6.0
    limiter.succeeded()
    assert limiter.current_rate == pytest.approx(5.5)
    vt.now += 600.0
    limiter.succeeded()
    assert limiter.current_rate == 10.0


@pytest.mark.anyio
async def test_limiter_not_adaptive_ignores_throttled() -> None:
    """adaptive=False keeps the configured rate whatever the 429s."""
    limiter = RateLimiter(10.0, clock=lambda: 0.0, adaptive=False)
    limiter.throttled()
    assert limiter.current_rate == 10.0


@pytest.mark.anyio
async def test_limiter_cancelled_acquire_does_not_break_later_ones() -> None:
    """A waiter cancelled mid-sleep loses its slot; later acquires still work, spaced."""
    vt = VirtualTime()
    limiter = RateLimiter(1.0, clock=vt.clock, sleep=vt.sleep)
    await limiter.acquire()  # 1000.0
    scope = anyio.CancelScope()
    reached: list[str] = []

    async def victim() -> None:
        with scope:
            await limiter.acquire()  # slot at 1001.0
            reached.append("victim")

    async def canceller() -> None:
        await vt.sleep(0.5)
        scope.cancel()

    await vt.run(victim, canceller)
    assert reached == []
    assert scope.cancelled_caught
    grants: list[float] = []
    await vt.run(acquiring(vt, limiter, 3, grants))
    assert grants == pytest.approx([1002.0, 1003.0, 1004.0])  # the lost slot stays lost


@pytest.mark.parametrize(("rate", "burst"), [(-1.0, 1), (math.nan, 1), (1.0, 0)])
def test_limiter_rejects_bad_parameters(rate: float, burst: int) -> None:
    """Negative/NaN rates and burst < 1 are configuration errors."""
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(rate, burst)


# ------------------------------------------------------------------ AdaptiveRate goodput


def test_a_429_after_a_window_of_200s_drops_just_under_the_goodput_at_once() -> None:
    """200s at 40/s for a second, then a 429: the rate goes to 0.9 x 40/s in one step
    (halving would give 100/s), and the 429s within the next window leave it there."""
    adaptive = AdaptiveRate(ceiling=200.0, now=0.0)
    for i in range(40):
        adaptive.on_success(i / 40)
    assert adaptive.goodput(1.0) == pytest.approx(40.0)
    assert adaptive.on_throttled(1.0) == pytest.approx(0.9 * 40.0)
    echoes = [adaptive.on_throttled(1.0 + i * 0.01) for i in range(49)]  # 1.00 .. 1.48
    assert all(r == pytest.approx(36.0) for r in echoes)


def test_goodput_needs_a_whole_window_and_forgets_old_200s() -> None:
    """No goodput before one window has passed; 200s older than the window do not count."""
    adaptive = AdaptiveRate(ceiling=200.0, now=10.0)
    for i in range(12):
        adaptive.on_success(10.0 + i / 40)
    assert adaptive.goodput(10.3) is None
    assert adaptive.on_throttled(10.3) == pytest.approx(100.0)  # halved, no goodput yet
    for i in range(12, 80):
        adaptive.on_success(10.0 + i / 40)
    assert adaptive.goodput(12.0) == pytest.approx(40.0, rel=0.05)
    assert adaptive.goodput(20.0) == 0.0


def test_after_a_stated_limit_the_goodput_does_not_lower_the_rate() -> None:
    """The stated limit is the better guide: 429s within the cooldown after it change
    nothing, whatever the goodput."""
    adaptive = AdaptiveRate(ceiling=200.0, now=0.0)
    assert adaptive.on_stated_limit(GatewayLimit(40, 1.0), 0.0)
    for i in range(10):
        adaptive.on_success(i * 0.1)
    assert adaptive.on_throttled(1.0) == pytest.approx(38.0)


def test_against_a_server_limit_without_its_number_few_requests_are_429s() -> None:
    """A client at 5x a server's GCRA limit (40/s, burst 5), answers at once, 20 s of fake
    time: at most 15 % of requests are 429s and the goodput is at least 80 % of the limit."""
    server_interval, server_tolerance = 1 / 40, 4 / 40
    server_tat = 0.0
    adaptive = AdaptiveRate(ceiling=200.0, now=0.0)
    now, sent, throttled, ok = 0.0, 0, 0, 0
    while now < 20.0:
        sent += 1
        if server_tat - server_tolerance <= now:
            server_tat = max(server_tat, now) + server_interval
            ok += 1
            rate = adaptive.on_success(now)
        else:
            throttled += 1
            rate = adaptive.on_throttled(now)
        now += 1 / rate
    assert throttled / sent <= 0.15
    assert ok / 20.0 >= 0.8 * 40
