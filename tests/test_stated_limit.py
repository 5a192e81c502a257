"""The gateway's limit stated in a 429's message: parsed, heeded at once, still a ceiling only.

Pure parsing and rate maths on a fake clock; the sandbox's 429 bodies read back
by the same parser; one crawl over loopback that records the limit in run.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from crawler.crawl.limits import (
    STATED_LIMIT_SHARE,
    AdaptiveRate,
    GatewayLimit,
    RateLimiter,
    TokenBucket,
    parse_gateway_limit,
)
from crawler.sandbox.faults import FaultConfig, throttled_error
from tests.e2e_helpers import crawl_sandbox, sandbox_config

GATEWAY = "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:{}"


def gateway_message(limit: int, window: str) -> str:
    return GATEWAY.format(limit, window)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(gateway_message(2400, "1 minute"), GatewayLimit(2400, 60.0), id="per-minute"),
        pytest.param(gateway_message(40, "1 second"), GatewayLimit(40, 1.0), id="per-second"),
        pytest.param(
            "The throttling threshold has been reached: policy ip over ratelimit,"
            "limit:600,time:1 minute",
            GatewayLimit(600, 60.0),
            id="policy-ip",
        ),
        pytest.param(gateway_message(5, "10 seconds"), GatewayLimit(5, 10.0), id="plural-window"),
        pytest.param(gateway_message(90, "1 minutes"), GatewayLimit(90, 60.0), id="plural-one"),
        pytest.param(gateway_message(30, "minute"), GatewayLimit(30, 60.0), id="no-count"),
        pytest.param(gateway_message(30, "2 min"), GatewayLimit(30, 120.0), id="min"),
        pytest.param(gateway_message(7, "1s"), GatewayLimit(7, 1.0), id="s-attached"),
        pytest.param(gateway_message(100, "1 hour"), GatewayLimit(100, 3600.0), id="hour"),
        pytest.param(gateway_message(1000, "1 day"), GatewayLimit(1000, 86400.0), id="day"),
        pytest.param("LIMIT: 40 , TIME: 1 SECOND", GatewayLimit(40, 1.0), id="case-and-spaces"),
        pytest.param(
            "policy user over ratelimit,limit:40,time:1 second (request 7c1e)",
            GatewayLimit(40, 1.0),
            id="text-after",
        ),
    ],
)
def test_every_known_form_of_the_message_is_parsed(message: str, expected: GatewayLimit) -> None:
    """Each form the gateway is known to write (and near variants) gives its limit and window."""
    assert parse_gateway_limit(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        None,
        "",
        "The throttling threshold has been reached",
        "slow down",
        "Too many requests",
        gateway_message(0, "1 minute"),
        gateway_message(40, "0 seconds"),
        gateway_message(-5, "1 minute"),
        gateway_message(40, "1 fortnight"),
        gateway_message(40, "100 ms"),
        "policy user over ratelimit,limit:abc,time:1 minute",
        "policy user over ratelimit,limit:40",
        "ratelimit:40,time:1 minute",
        "time:1 minute,limit:40",
    ],
)
def test_messages_that_state_no_usable_limit_give_none(message: str | None) -> None:
    """No limit, a zero limit or window, an unknown unit or garbage: None (adaptive fallback)."""
    assert parse_gateway_limit(message) is None


@given(st.text(max_size=300))
def test_parsing_any_text_never_raises(message: str) -> None:
    """Any text gives None or a positive limit over a positive window."""
    found = parse_gateway_limit(message)
    assert found is None or (found.limit > 0 and found.window > 0 and found.per_second > 0)


def test_gateway_limit_per_second() -> None:
    """2400 a minute is 40 a second."""
    assert GatewayLimit(2400, 60.0).per_second == 40.0


# --------------------------------------------------------------------------- the rate


def test_stated_limit_sets_the_rate_just_under_it_at_once() -> None:
    """--rate 200, the gateway says 40/s: the rate is 38/s at once, and that is the ceiling."""
    rate = AdaptiveRate(200.0, now=0.0)
    assert rate.on_stated_limit(GatewayLimit(40, 1.0), now=1.0)
    assert rate.current == rate.ceiling == pytest.approx(40 * STATED_LIMIT_SHARE)
    assert rate.on_success(now=500.0) == pytest.approx(38.0)  # recovers to it, never above


def test_stated_limit_is_a_ceiling_not_a_promise() -> None:
    """429s in the cooldown after heeding are echoes; a later 429 still halves the rate."""
    rate = AdaptiveRate(200.0, now=0.0)
    rate.on_stated_limit(GatewayLimit(40, 1.0), now=10.0)
    assert rate.on_throttled(now=11.0) == pytest.approx(38.0)
    assert rate.on_throttled(now=12.5) == pytest.approx(19.0)
    assert rate.on_success(now=10_000.0) == pytest.approx(38.0)


def test_stated_limit_never_raises_the_rate_above_the_configured_one() -> None:
    """--rate 20 under a stated 40/s: nothing changes (and the caller is told so)."""
    rate = AdaptiveRate(20.0, now=0.0)
    assert not rate.on_stated_limit(GatewayLimit(40, 1.0), now=1.0)
    assert rate.current == rate.ceiling == 20.0


def test_only_a_lower_stated_limit_lowers_the_ceiling_again() -> None:
    """The same limit again changes nothing; a lower one lowers the ceiling; a higher one not."""
    rate = AdaptiveRate(200.0, now=0.0)
    assert rate.on_stated_limit(GatewayLimit(2400, 60.0), now=1.0)
    assert not rate.on_stated_limit(GatewayLimit(40, 1.0), now=2.0)
    assert not rate.on_stated_limit(GatewayLimit(100, 1.0), now=3.0)
    assert rate.on_stated_limit(GatewayLimit(20, 1.0), now=4.0)
    assert rate.ceiling == pytest.approx(19.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_limiter_heeds_the_message_logs_once_and_reports_it() -> None:
    """A 429 stating 2400/min takes the shared rate from 200 to 38 at once; the limit is
    logged once and kept; the same message after the cooldown halves the rate."""
    clock = Clock()
    limiter = RateLimiter(200.0, 5, clock=clock)
    message = gateway_message(2400, "1 minute")
    with capture_logs() as events:
        limiter.throttled(message)
        assert limiter.current_rate == pytest.approx(38.0)
        limiter.throttled(message)  # an echo of the same overload
        assert limiter.current_rate == pytest.approx(38.0)
        clock.now += 3.0
        limiter.throttled(message)
        assert limiter.current_rate == pytest.approx(19.0)
    assert limiter.stated_limit == GatewayLimit(2400, 60.0)
    learned = [e for e in events if e["event"] == "crawl.gateway_limit"]
    assert len(learned) == 1
    assert (learned[0]["limit"], learned[0]["window_seconds"]) == (2400, 60.0)
    assert learned[0]["rate"] == pytest.approx(38.0)


def test_limiter_without_a_stated_limit_falls_back_to_halving() -> None:
    """A 429 whose message states nothing halves the rate, as before."""
    limiter = RateLimiter(200.0, clock=Clock())
    limiter.throttled("The throttling threshold has been reached")
    assert limiter.current_rate == pytest.approx(100.0)
    assert limiter.stated_limit is None


def test_limiter_below_the_stated_limit_still_backs_off() -> None:
    """--rate 20 and a 429 stating 40/s: someone else shares the quota, so the rate halves;
    the stated limit is still recorded."""
    limiter = RateLimiter(20.0, clock=Clock())
    limiter.throttled(gateway_message(40, "1 second"))
    assert limiter.current_rate == pytest.approx(10.0)
    assert limiter.stated_limit == GatewayLimit(40, 1.0)


def test_unlimited_limiter_ignores_the_message() -> None:
    """--rate 0 paces nothing, a stated limit included."""
    limiter = RateLimiter(0.0, clock=Clock())
    limiter.throttled(gateway_message(40, "1 second"))
    assert limiter.current_rate == 0.0
    assert limiter.stated_limit is None


def test_tokens_handed_out_move_back_when_the_rate_comes_down() -> None:
    """Four tokens at 10/s, then 5/s: the last one (due at 0.3 s) is now due at 0.6 s, where
    the bucket counts it, and the next token after it (0.8 s)."""
    bucket = TokenBucket(10.0, 1, now=0.0)
    dues = [bucket.reserve(0.0) for _ in range(4)]
    assert dues == pytest.approx([0.0, 0.1, 0.2, 0.3])
    bucket.set_rate(5.0, now=0.0)
    assert bucket.moved(0.3, since=0) == pytest.approx(0.6)
    assert bucket.moved(0.3, since=bucket.moves) == 0.3  # handed out after the decrease
    assert bucket.reserve(0.0) == pytest.approx(0.8)


def test_a_long_history_of_decreases_is_not_kept() -> None:
    """A token handed out before more decreases than the bucket remembers: None (take anew)."""
    bucket = TokenBucket(1000.0, 1, now=0.0)
    bucket.reserve(0.0)
    bucket.reserve(0.0)
    rate = 1000.0
    for _ in range(9):
        rate /= 2
        bucket.reserve(0.0)
        bucket.set_rate(rate, now=0.0)
    assert bucket.moved(1.0, since=0) is None
    assert bucket.moved(1.0, since=1) is not None


@pytest.mark.anyio
async def test_a_caller_asleep_when_the_limit_is_stated_goes_at_the_new_rate() -> None:
    """A caller asleep on a 10/s token when a 429 states 2/s wakes where the new rate puts
    its token, not at the old time (which would be one more 429)."""
    clock = Clock()
    limiter: RateLimiter

    async def sleep(delay: float) -> None:
        if not told:
            told.append(True)
            limiter.throttled(gateway_message(2, "1 second"))  # while this caller sleeps
        clock.now += delay

    told: list[bool] = []
    limiter = RateLimiter(10.0, clock=clock, sleep=sleep)
    await limiter.acquire()
    start = clock.now
    await limiter.acquire()
    assert told
    assert clock.now - start == pytest.approx(0.1 * 10.0 / (2 * STATED_LIMIT_SHARE))


# --------------------------------------------------------------------------- the sandbox


@pytest.mark.parametrize(
    ("rate", "window", "expected"),
    [
        (40.0, "minute", GatewayLimit(2400, 60.0)),
        (40.0, "second", GatewayLimit(40, 1.0)),
        (40.0, None, None),
        (None, "minute", None),
    ],
)
def test_sandbox_429_states_its_limit_as_the_gateway_does(
    rate: float | None, window: str | None, expected: GatewayLimit | None
) -> None:
    """The sandbox's 429 message states its limit in the window asked for, or none."""
    body = throttled_error(rate, window)  # type: ignore[arg-type]
    assert body["error_code"] == "APIG.0308"
    assert body["error_msg"].startswith("The throttling threshold has been reached")
    assert parse_gateway_limit(body["error_msg"]) == expected


@pytest.mark.anyio
async def test_crawl_records_the_stated_limit_in_run_json(tmp_path: Path) -> None:
    """--rate 1000 against a server limited to 100/s that says so: every row arrives and
    run.json records the limit the gateway stated."""
    faults = FaultConfig(rate_limit=100.0, rate_burst=5, stated_window="second")
    keys, outcome, stats = await crawl_sandbox(
        sandbox_config(faults=faults), tmp_path / "out", rate=1000, burst=5, max_attempts=10
    )
    assert outcome.tags.num_rows == len(keys)
    assert stats.throttled > 0
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["gateway_limit"] == {
        "limit": 100,
        "window_seconds": 1.0,
        "requests_per_second": 100.0,
    }
