"""When to try a request again: pure decisions, no I/O, no clock of their own.

* :func:`backoff_delay`: exponential backoff with full jitter, a pure function
  like stamina's ``_compute_backoff``.
* :func:`parse_retry_after`: a ``Retry-After`` header to seconds.
* :class:`Failure`, :func:`classify` and :func:`failure_of`: what an answer
  (or its absence) means, by the fault table of :mod:`crawler.errors`.
* :meth:`RetryPolicy.decide`: ``failure, attempts spent ->`` one of
  :class:`Sleep` (this request waits), :class:`PauseEveryone` (a 429 with
  ``Retry-After``: the gateway's limit is per user, so every request waits)
  or :class:`GiveUp`.

The async loop that carries the decisions out (slot, limiter, stop-aware
sleep, counters) is :mod:`crawler.crawl.attempt`.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from crawler.errors import RETRYABLE_KINDS, ErrorKind, kind_for_status
from crawler.http.response import Response
from crawler.output.normalize import DecodeError, tag_row
from crawler.output.rows import TagRow
from crawler.targets import Target

__all__ = [
    "Decision",
    "Failure",
    "GiveUp",
    "PauseEveryone",
    "RetryPolicy",
    "Sleep",
    "backoff_delay",
    "classify",
    "failure_of",
    "parse_retry_after",
]


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait after attempt number ``attempt`` (1-based) failed.

    Full jitter, as in the AWS architecture blog post "Exponential Backoff And
    Jitter": uniform over ``[0, min(maximum, initial * 2 ** (attempt - 1))]``.
    Full jitter spreads the retries of workers that failed together, so they do
    not come back together. Any attempt number is safe: the exponential term
    saturates at ``maximum`` instead of overflowing.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if not (0.0 <= initial < math.inf) or not (0.0 <= maximum < math.inf):
        raise ValueError(f"initial and maximum must be finite and >= 0, got {initial}, {maximum}")
    try:
        # ldexp(x, n) is x * 2**n without building 2**n: exact, and it raises
        # instead of returning inf when the product does not fit a float.
        ceiling = min(maximum, math.ldexp(initial, attempt - 1))
    except OverflowError:
        ceiling = maximum
    return rng.uniform(0.0, ceiling)


# RFC 9110 delta-seconds is 1*DIGIT; a fraction ("1.5") is tolerated, and a sign
# is accepted so that a negative value clamps to 0 instead of being rejected.
_DELTA_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value.

    Accepts delta-seconds (``"3"``; ``"1.5"`` tolerated) or an HTTP-date
    (RFC 9110 IMF-fixdate, also the obsolete RFC 850 and asctime forms that
    :func:`email.utils.parsedate_to_datetime` reads). Returns ``None`` when the
    value is absent or unparseable, ``0.0`` for a negative delay or a date in
    the past. ``now`` should be timezone-aware; a naive ``now`` (or a date
    without a zone) is taken as UTC. Capping the wait (``--backoff-max``) is
    the caller's policy, not done here.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one attempt produced no result."""

    kind: ErrorKind
    http_status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    retry_after: float | None = None
    """Seconds the server asked to wait (a 429's ``Retry-After``), if it did."""

    def reason(self) -> str:
        """One line: the kind, and the status, code and message when there was an answer."""
        parts = [f"{self.kind.value}:"]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        parts += [p for p in (self.error_code, self.error_msg) if p]
        return " ".join(parts)


def classify(
    outcome: Response | Failure, target: Target, attempts: int, now: datetime
) -> TagRow | Failure:
    """The ``tags`` row a ShowRepoTag answer makes, or the failure it is. Pure."""
    if isinstance(outcome, Failure):
        return outcome
    if outcome.status == 200:
        try:
            return tag_row(
                target.namespace, target.repository, target.tag, outcome.body, now, attempts
            )
        except DecodeError as exc:
            return Failure(ErrorKind.DECODE, 200, None, str(exc)[:300])
    return failure_of(outcome, now)


def failure_of(response: Response, now: datetime) -> Failure:
    """The failure a non-200 answer is: its kind, the Huawei code and message (read
    and scrubbed by the client), and for a 429 the ``Retry-After`` in seconds. Pure."""
    kind = kind_for_status(response.status)
    assert kind is not None  # only 200 has no kind
    retry_after = (
        parse_retry_after(response.retry_after, now) if kind is ErrorKind.THROTTLED else None
    )
    return Failure(kind, response.status, response.error_code, response.error_msg, retry_after)


@dataclass(frozen=True, slots=True)
class Sleep:
    """This request waits ``seconds``, then tries again."""

    seconds: float
    lower_rate: bool = False
    """A 429 without ``Retry-After``: the shared rate should come down too."""


@dataclass(frozen=True, slots=True)
class PauseEveryone:
    """A 429 with ``Retry-After``: no request of the run goes for ``seconds``,
    then this one tries again (it waits in the limiter with everyone else)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The failure is final, or the attempts ran out."""


Decision = Sleep | PauseEveryone | GiveUp


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request (a tag, or a list page) is retried."""

    max_attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def decide(self, failure: Failure, spent: int, rng: random.Random) -> Decision:
        """What to do after ``spent`` attempts, the last of which ended in ``failure``. Pure.

        Definitive kinds (and ``unauthorized``) and spent attempts give up. A
        ``Retry-After`` (capped by ``backoff_max``) pauses everyone; anything
        else sleeps the full-jitter backoff, and a bare 429 also asks for a
        lower shared rate.
        """
        if failure.kind not in RETRYABLE_KINDS or spent >= self.max_attempts:
            return GiveUp()
        if failure.retry_after is not None:
            return PauseEveryone(min(failure.retry_after, self.backoff_max))
        delay = backoff_delay(spent, self.backoff_initial, self.backoff_max, rng)
        return Sleep(delay, lower_rate=failure.kind is ErrorKind.THROTTLED)
