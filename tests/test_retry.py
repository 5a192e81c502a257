"""The retry decision: failure and attempts spent in, sleep / pause everyone / give up out."""

from __future__ import annotations

import random

import pytest

from crawler.crawl.retry import Failure, GiveUp, PauseEveryone, RetryPolicy, Sleep
from crawler.errors import ErrorKind

POLICY = RetryPolicy(max_attempts=4, backoff_initial=0.5, backoff_max=3.0)


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.NOT_FOUND,
        ErrorKind.FORBIDDEN,
        ErrorKind.CLIENT_ERROR,
        ErrorKind.UNAUTHORIZED,
        ErrorKind.INVALID_TARGET,
    ],
)
def test_final_kinds_give_up_at_once(kind: ErrorKind) -> None:
    """A definitive answer or a refused credential is never retried."""
    assert POLICY.decide(Failure(kind), 1, random.Random(0)) == GiveUp()


def test_attempts_spent_give_up() -> None:
    """A transient failure gives up once max_attempts are spent, not before."""
    failure = Failure(ErrorKind.SERVER_ERROR, 503)
    assert isinstance(POLICY.decide(failure, 3, random.Random(0)), Sleep)
    assert POLICY.decide(failure, 4, random.Random(0)) == GiveUp()


def test_retry_after_pauses_everyone_capped_by_backoff_max() -> None:
    """Retry-After asks for a pause of everyone, never longer than backoff_max."""
    assert POLICY.decide(
        Failure(ErrorKind.THROTTLED, 429, retry_after=3600.0), 1, random.Random(0)
    ) == PauseEveryone(3.0)
    assert POLICY.decide(
        Failure(ErrorKind.THROTTLED, 429, retry_after=1.5), 1, random.Random(0)
    ) == PauseEveryone(1.5)


def test_bare_429_sleeps_and_lowers_the_rate_other_failures_only_sleep() -> None:
    """A 429 without Retry-After asks for a lower shared rate; a 5xx or timeout does not."""
    throttled = POLICY.decide(Failure(ErrorKind.THROTTLED, 429), 2, random.Random(0))
    assert isinstance(throttled, Sleep)
    assert throttled.lower_rate
    for kind in (ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT, ErrorKind.NETWORK, ErrorKind.DECODE):
        decision = POLICY.decide(Failure(kind), 2, random.Random(0))
        assert isinstance(decision, Sleep)
        assert not decision.lower_rate


def test_backoff_grows_with_attempts_and_stays_under_the_cap() -> None:
    """The sleep is the full-jitter backoff: within [0, min(max, initial * 2**(n-1))]."""
    for spent, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0)):
        for seed in range(50):
            decision = POLICY.decide(Failure(ErrorKind.TIMEOUT), spent, random.Random(seed))
            assert isinstance(decision, Sleep)
            assert 0.0 <= decision.seconds <= ceiling
