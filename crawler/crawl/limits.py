"""Rate limiting: pure maths, plus one thin async wrapper.

Every request the crawler sends, retries included, first goes through
:meth:`RateLimiter.acquire`. The maths is kept apart from the clock so it can
be tested without time passing:

* :class:`TokenBucket`: a GCRA token bucket (no clock of its own: every method
  takes ``now``).
* :func:`parse_gateway_limit`: the limit a gateway 429 states in its message.
* :class:`AdaptiveRate`: the target rate after throttling signals (AIMD), and
  the ceiling a stated limit sets.
* :class:`RateLimiter`: glues a clock and a sleep function to the above.

Why the limiter is shaped this way (see ``docs/swr-api.md``,
"Throttling"): the SWR API gateway throttles **per user, per minute** and answers
429 ``APIG.0308``, usually without ``Retry-After``; Huawei's advice is to retry
after 2 to 5 s. So one limiter is shared by every worker of a run, a
``Retry-After`` pauses everyone, and a bare 429 lowers the shared rate, which
then climbs back over about one gateway window. When the 429's message states
the limit ("...ratelimit,limit:40,time:1 second"), the shared rate goes just
under it at once instead of halving its way down.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import anyio
import structlog

__all__ = [
    "AdaptiveRate",
    "GatewayLimit",
    "RateLimiter",
    "TokenBucket",
    "parse_gateway_limit",
]

log = structlog.get_logger("crawler")


#: Rate decreases a token bucket remembers for callers asleep on a token.
_MOVES_KEPT = 8


class TokenBucket:
    """A token bucket run as GCRA (the generic cell rate algorithm).

    https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm, virtual
    scheduling form (aiometer does the same). State is one number, the
    *theoretical arrival time* ``tat``: when the bucket would be full again.
    A request at ``now`` may go at ``max(now, tat - tolerance)``, where the
    tolerance ``(burst - 1) / rate`` is what lets ``burst`` requests through
    together; each grant pushes ``tat`` one interval (``1 / rate``) further.

    Properties that follow, and that the tests check:

    * the bucket starts full with ``burst`` tokens, never more: at start-up
      at most ``burst`` requests go at once, then one every ``1 / rate``;
    * idle time does not bank tokens beyond ``burst`` (``tat`` never lags
      behind ``now``);
    * :meth:`reserve` always takes the token, even a future one, so callers
      just sleep the returned delay: grants are FIFO and spaced, and waiters
      do not wake together to fight over a token (no thundering herd).

    Pure: no clock of its own, every method takes ``now`` (monotonic seconds).
    """

    __slots__ = ("_burst", "_hold", "_interval", "_moves", "_rate", "_tat", "_tolerance", "moves")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._burst = burst
        self._rate = 0.0
        self._interval = 0.0
        self._tolerance = 0.0
        self._set_params(rate)
        self._tat = now  # full: burst tokens available right now
        self._hold = -math.inf  # no token before this (a Retry-After pause)
        #: Rate decreases so far; ``_moves`` keeps the last few as (origin, stretch).
        self.moves = 0
        self._moves: deque[tuple[float, float]] = deque(maxlen=_MOVES_KEPT)

    def _set_params(self, rate: float) -> None:
        if not (0.0 < rate < math.inf):
            raise ValueError(f"rate must be finite and > 0, got {rate}")
        self._rate = rate
        self._interval = 1.0 / rate
        self._tolerance = (self._burst - 1) * self._interval

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Capacity: the most tokens that can be taken at once."""
        return self._burst

    def reserve(self, now: float) -> float:
        """Take a token; return 0.0 if it is available now, else the delay until it is due.

        The token is taken either way: the caller sleeps the delay and then goes.
        """
        tat = self._tat if self._tat > now else now
        delay = tat - self._tolerance - now
        self._tat = tat + self._interval
        return delay if delay > 0.0 else 0.0

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from ``now`` on.

        The bucket's fill level is kept in *tokens*, so a lower rate does not
        refill it (no burst right after a 429) and a higher one does not drain it.
        Delays already handed out cannot change; when callers are queued, the
        next reservation is placed after the last queued one so a rate increase
        never lets a newcomer overtake (or crowd) a caller already waiting.
        """
        old_interval, old_tolerance = self._interval, self._tolerance
        # During a pause the bucket's time stands still at the deadline: the
        # pause itself is not a backlog of tokens to rescale.
        origin = max(now, self._hold)
        backlog = self._tat - origin if self._tat > origin else 0.0
        self._set_params(rate)
        stretch = self._interval / old_interval
        if stretch > 1.0 and backlog > 0.0:
            self.moves += 1
            self._moves.append((origin, stretch))
        tat = origin + backlog * stretch
        last_due = self._tat - old_interval - old_tolerance
        if last_due > origin:
            tat = max(tat, last_due + self._interval + self._tolerance)
        self._tat = tat

    def moved(self, due: float, since: int) -> float | None:
        """When a token due at ``due``, handed out after ``since`` decreases, is due now.

        A decrease stretches the backlog of handed-out tokens; a caller asleep on
        one moves back with it (to where the bucket now counts it), instead of
        going at the old rate into a gateway that just said no. None when that
        history is no longer kept (the caller should take a fresh token).
        """
        missed = self.moves - since
        if missed > len(self._moves):
            return None
        for origin, stretch in itertools.islice(self._moves, len(self._moves) - missed, None):
            if due > origin:
                due = origin + (due - origin) * stretch
        return due

    def hold_until(self, deadline: float) -> None:
        """Grant no token before ``deadline``; resume there with one token, then spaced.

        Used for ``Retry-After``: after a pause the gateway gets a gentle restart,
        not a burst.
        """
        self._hold = max(self._hold, deadline)
        self._tat = max(self._tat, deadline + self._tolerance)


class GatewayLimit(NamedTuple):
    """A limit a gateway stated: ``limit`` requests per ``window`` seconds."""

    limit: int
    window: float

    @property
    def per_second(self) -> float:
        """The limit as requests per second."""
        return self.limit / self.window


#: "limit:40,time:1 second", "limit: 2400, time: 1 minute", "limit:5,time:10 seconds"...
_STATED_LIMIT = re.compile(
    r"\blimit\s*[:=]\s*(\d{1,12})\s*[,;]\s*time\s*[:=]\s*(\d{1,9})?\s*"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)\b",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_gateway_limit(message: str | None) -> GatewayLimit | None:
    """The limit an API gateway's 429 message states, or None if it states none.

    The gateway's throttling message reads "The throttling threshold has been
    reached: policy user over ratelimit,limit:XX,time:1 minute" (``policy ip``
    and ``time:1 second`` occur too; see ``docs/swr-api.md``). Spaces, case,
    a plural or abbreviated unit (``10 seconds``, ``1 min``, ``1 h``) and a
    missing count (``time:minute``) are tolerated; a zero limit or window, or
    any other text, gives None. Pure.
    """
    if not message:
        return None
    found = _STATED_LIMIT.search(message[:1000])
    if found is None:
        return None
    limit = int(found.group(1))
    count = int(found.group(2)) if found.group(2) else 1
    unit = found.group(3).lower()
    window = count * _UNIT_SECONDS["m" if unit.startswith("m") else unit[0]]
    if limit <= 0 or window <= 0:
        return None
    return GatewayLimit(limit, window)


#: A stated limit is approached from below: the shared rate is set to this share
#: of it, so that clock drift between us and the gateway, and requests that reach
#: it late and together, do not go over.
STATED_LIMIT_SHARE = 0.95


# AdaptiveRate defaults. The gateway limit is "limit:XX, time:1 minute" per user.
#: Multiplicative decrease on a 429 without Retry-After: halve, as TCP does.
DEFAULT_DECREASE = 0.5
#: At most one decrease per this many seconds. 429s that arrive within it are
#: answers to requests already in flight when the limit was hit (echoes of the
#: same overload), so counting each would collapse the rate to the floor. 2 s is
#: the low end of Huawei's "retry after 2 to 5 s".
DEFAULT_COOLDOWN = 2.0
#: Default floor: one request per 5 s, the longest wait Huawei suggests; slower
#: than that is stopping, not throttling. Capped by the ceiling.
DEFAULT_FLOOR = 0.2
#: Default recovery: ceiling / 120 requests/s gained per second after a
#: decrease, so climbing back from half the ceiling takes 60 s, one gateway
#: window. The crawler then probes the limit about once per window instead of
#: bouncing off it every few seconds.
DEFAULT_RECOVERY_WINDOW = 120.0
#: Goodput (200s a second) is measured over the last this many seconds. A 429
#: at least this long after the last decrease, with 200s in that window, sets
#: the rate just under the goodput at once: what the gateway let through is the
#: best estimate of its limit, found in one step where halving from 5x the limit
#: takes three decreases (6 s at one per cooldown). Half a second is long
#: enough for the answers to requests sent at the old rate (echoes) to be over,
#: and short enough that few requests go at the old rate.
DEFAULT_GOODPUT_WINDOW = 0.5
#: The share of the measured goodput the rate is set to: under it, so that the
#: next window's requests fit under the limit with some room.
GOODPUT_SHARE = 0.9
#: The goodput window is counted in this many slots (fixed memory at any rate).
_GOODPUT_SLOTS = 10


class AdaptiveRate:
    """The target request rate after throttling signals: AIMD-like, pure.

    * :meth:`on_throttled` (a 429 without ``Retry-After``): when 200s arrived in
      the last ``goodput_window`` and the last decrease is at least that old, the
      rate goes to ``GOODPUT_SHARE`` of that goodput at once (if that is lower);
      otherwise it is multiplied by ``decrease``, at most once per ``cooldown``.
      Never below ``floor``. After a stated limit only the latter applies.
    * :meth:`on_success` (a 200): the rate climbs back *linearly in time since
      the last decrease*, ``recover_per_second`` requests/s per second, never
      above ``ceiling``. Recovery is lazy (computed when asked), so it is the
      same whether successes come often or seldom.
    * :meth:`on_stated_limit` (a 429 whose message states the gateway's limit):
      the ceiling comes down to just under that limit (never up, never above
      the configured rate) and the rate is set there at once; the cooldown
      starts, so the 429s of requests already in flight do not halve it. The
      stated limit is a ceiling, not a promise: later 429s still decrease.

    Defaults and why: see ``DEFAULT_*`` above (halve; one decrease per 2 s;
    floor 0.2/s; back from half to full in 60 s, one gateway window). Under a
    429 every cooldown the rate settles where a decrease cancels the recovery
    in between (``ceiling / 60`` with the defaults) or at the floor, whichever
    is higher.
    """

    __slots__ = (
        "_base",
        "_ceiling",
        "_configured",
        "_cooldown",
        "_counts",
        "_decrease",
        "_decreased_at",
        "_floor",
        "_recover",
        "_slot",
        "_slot_seconds",
        "_started",
        "_window",
        "current",
    )

    def __init__(
        self,
        ceiling: float,
        floor: float | None = None,
        decrease: float = DEFAULT_DECREASE,
        recover_per_second: float | None = None,
        now: float = 0.0,
        *,
        cooldown: float = DEFAULT_COOLDOWN,
        goodput_window: float = DEFAULT_GOODPUT_WINDOW,
    ) -> None:
        if not (0.0 < ceiling < math.inf):
            raise ValueError(f"ceiling must be finite and > 0, got {ceiling}")
        if floor is None:
            floor = min(ceiling, DEFAULT_FLOOR)
        if not (0.0 < floor <= ceiling):
            raise ValueError(f"floor must be in (0, ceiling], got {floor}")
        if not (0.0 < decrease < 1.0):
            raise ValueError(f"decrease must be in (0, 1), got {decrease}")
        if recover_per_second is None:
            recover_per_second = ceiling / DEFAULT_RECOVERY_WINDOW
        if not (0.0 < recover_per_second < math.inf):
            raise ValueError(f"recover_per_second must be > 0, got {recover_per_second}")
        if not (0.0 <= cooldown < math.inf):
            raise ValueError(f"cooldown must be >= 0, got {cooldown}")
        if not (0.0 < goodput_window < math.inf):
            raise ValueError(f"goodput_window must be > 0, got {goodput_window}")
        self._ceiling = ceiling
        self._configured = ceiling
        self._floor = floor
        self._decrease = decrease
        self._recover = recover_per_second
        self._cooldown = cooldown
        self._base = ceiling  # the rate right after the last decrease
        # No decrease yet: `now` only anchors the state; the first 429 always counts.
        self._decreased_at = now - cooldown - 1.0
        #: The current target rate (requests/s), as of the last call.
        self.current = ceiling
        self._window = goodput_window
        self._slot_seconds = goodput_window / _GOODPUT_SLOTS
        self._started = now
        self._slot = math.floor(now / self._slot_seconds)  # the slot last counted in
        self._counts = [0] * _GOODPUT_SLOTS  # 200s per slot, a ring indexed by slot number

    @property
    def ceiling(self) -> float:
        """The rate never exceeded: the configured one, or just under a stated limit."""
        return self._ceiling

    @property
    def floor(self) -> float:
        """The rate is never lowered below this."""
        return self._floor

    def _recovered(self, now: float) -> float:
        if self._base >= self._ceiling:
            return self._ceiling
        elapsed = now - self._decreased_at
        if elapsed <= 0.0:
            return self._base
        return min(self._ceiling, self._base + self._recover * elapsed)

    def _advance(self, now: float) -> None:
        """Move the ring to ``now``'s slot, emptying the slots passed over."""
        slot = math.floor(now / self._slot_seconds)
        if slot <= self._slot:
            return
        for passed in range(max(self._slot + 1, slot - _GOODPUT_SLOTS + 1), slot + 1):
            self._counts[passed % _GOODPUT_SLOTS] = 0
        self._slot = slot

    def goodput(self, now: float) -> float | None:
        """200s a second over the last goodput window; None before a whole window has passed."""
        if now - self._started < self._window:
            return None
        self._advance(now)
        # From the start of the oldest slot kept to now: the current slot is only begun.
        span = now - (self._slot - _GOODPUT_SLOTS + 1) * self._slot_seconds
        return sum(self._counts) / span

    def on_throttled(self, now: float) -> float:
        """A 429 without ``Retry-After`` arrived: decrease (to just under the goodput, or
        halving once per cooldown); return the rate."""
        since = now - self._decreased_at
        recovered = self._recovered(now)
        learned = self._ceiling < self._configured  # a stated limit is the better guide
        observed = self.goodput(now) if since >= self._window and not learned else None
        target = GOODPUT_SHARE * observed if observed else math.inf
        if target >= recovered:
            if since < self._cooldown:
                return self.current
            target = recovered * self._decrease
        self._base = max(self._floor, target)
        self._decreased_at = now
        self.current = self._base
        return self.current

    def on_stated_limit(self, limit: GatewayLimit, now: float) -> bool:
        """A 429 stated the gateway's limit: True if that lowered the ceiling (then the rate
        is set just under the limit, at once), False if the ceiling was already as low."""
        ceiling = min(self._configured, limit.per_second * STATED_LIMIT_SHARE)
        if ceiling >= self._ceiling:
            return False
        self._ceiling = ceiling
        self._floor = min(self._floor, ceiling)
        self._base = self.current = ceiling
        self._decreased_at = now
        return True

    def on_success(self, now: float) -> float:
        """A 200 arrived: count it (goodput); recover gradually toward the ceiling; return
        the rate."""
        self._advance(now)
        self._counts[self._slot % _GOODPUT_SLOTS] += 1
        if self.current < self._ceiling:
            self.current = self._recovered(now)
        return self.current


# A slot due within this of a pause's deadline counts as after it (float rounding).
_EPSILON = 1e-6


class RateLimiter:
    """The async gate every request goes through, retries included.

    * ``acquire()`` waits for a token of a shared :class:`TokenBucket`. The
      reservation is computed synchronously (the event loop is one thread, so
      no lock is needed) and the task sleeps only when the delay is positive:
      no ``sleep(0)``, no allocation beyond the coroutine itself.
    * ``rate == 0`` means unlimited: ``acquire()`` returns at once (it still
      honours a ``Retry-After`` pause, which the gateway imposes on everyone).
      ``throttled()`` and ``succeeded()`` are then no-ops: there is no rate to lower.
    * ``throttled(message)``: a 429 without ``Retry-After``; lowers the rate
      through :class:`AdaptiveRate` (when ``adaptive``), or, the first time the
      message states a (lower) limit, to just under that limit at once. The
      stated limit is logged once (``crawl.gateway_limit``) and kept in
      :attr:`stated_limit`.
    * ``pause_until(deadline)`` / ``pause_for(seconds)``: a 429 with
      ``Retry-After`` (``deadline`` is on this limiter's clock). The gateway's limit
      is per user, so every new request waits until ``deadline`` (clock time),
      and the bucket restarts there with one token, spaced after. Callers already
      asleep on a slot that falls inside the pause take a new slot when they wake
      (they may be overtaken by callers that arrived during the pause).
    * ``succeeded()``: a 200; lets the adaptive rate recover.

    Cancellation: a waiter cancelled while asleep loses its reserved slot (the
    slot stays taken, so the next callers are not moved earlier); nothing else
    is held, so the limiter stays usable. The cost is at most one unused slot
    per cancelled waiter, which errs on the side of sending less.
    """

    __slots__ = (
        "_adaptive",
        "_bucket",
        "_clock",
        "_pause_pending",
        "_paused_until",
        "_sleep",
        "stated_limit",
    )

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        adaptive: bool = True,
    ) -> None:
        if not (0.0 <= rate < math.inf):
            raise ValueError(f"rate must be finite and >= 0 (0 = unlimited), got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._bucket = TokenBucket(rate, burst, now) if rate > 0 else None
        self._adaptive = AdaptiveRate(rate, now=now) if adaptive and rate > 0 else None
        self._paused_until = -math.inf
        self._pause_pending = False  # lets the unlimited path skip reading the clock
        #: The lowest limit a 429's message has stated so far (None: none has).
        self.stated_limit: GatewayLimit | None = None

    @property
    def current_rate(self) -> float:
        """Requests per second allowed now; 0.0 means unlimited."""
        return self._bucket.rate if self._bucket is not None else 0.0

    async def acquire(self) -> None:
        """Wait until this request may be sent."""
        bucket = self._bucket
        if bucket is None:
            if self._pause_pending:
                await self._wait_out_pause()
            return
        now = self._clock()
        delay = bucket.reserve(now)
        if delay <= 0.0:
            return
        due = now + delay
        moves = bucket.moves
        await self._sleep(delay)
        while True:
            moved = bucket.moved(due, moves) if bucket.moves != moves else due
            moves = bucket.moves
            if moved is None or self._paused_until > moved + _EPSILON:
                # A pause that began while we slept covers us too if our slot is
                # inside it: take a fresh slot, which the bucket now places after
                # the deadline (as it does when the rate's history is too old).
                now = self._clock()
                due = now + bucket.reserve(now)
            elif moved > due + _EPSILON:
                due = moved  # the rate came down while we slept: our slot moved back
            else:
                return
            delay = due - self._clock()
            if delay > 0.0:
                await self._sleep(delay)

    async def _wait_out_pause(self) -> None:
        # Unlimited rate: everyone resumes together at the deadline, since no
        # spacing was asked for.
        while True:
            remaining = self._paused_until - self._clock()
            if remaining <= 0.0:
                self._pause_pending = False
                return
            await self._sleep(remaining)

    def pause_until(self, deadline: float) -> bool:
        """Hold every request not yet sent until ``deadline`` (clock time).

        Returns whether that made the pause longer (False: one already lasts as long).
        """
        if deadline <= self._paused_until:
            return False
        self._paused_until = deadline
        self._pause_pending = True
        if self._bucket is not None:
            self._bucket.hold_until(deadline)
        return True

    def pause_for(self, seconds: float) -> bool:
        """Like :meth:`pause_until`, ``seconds`` from now on the limiter's own clock."""
        return self.pause_until(self._clock() + seconds)

    def throttled(self, message: str | None = None) -> None:
        """A 429 without ``Retry-After`` (``message``: its error message): lower the
        shared rate, to just under the gateway's limit at once if the message states it."""
        adaptive, bucket = self._adaptive, self._bucket
        if adaptive is None or bucket is None:
            return
        now = self._clock()
        limit = parse_gateway_limit(message)
        if limit is not None and self._heed(limit, adaptive, bucket, now):
            return
        rate = adaptive.on_throttled(now)
        if rate != bucket.rate:
            bucket.set_rate(rate, now)

    def _heed(
        self, limit: GatewayLimit, adaptive: AdaptiveRate, bucket: TokenBucket, now: float
    ) -> bool:
        """Take a stated limit as the ceiling; True if that set the rate just under it."""
        if self.stated_limit is not None and limit.per_second >= self.stated_limit.per_second:
            return False  # already heeded: this 429 says the limit is not enough
        self.stated_limit = limit
        lowered = adaptive.on_stated_limit(limit, now)
        if lowered:
            bucket.set_rate(adaptive.current, now)
        log.info(
            "crawl.gateway_limit",
            limit=limit.limit,
            window_seconds=limit.window,
            rate=round(bucket.rate, 3),
        )
        return lowered

    def succeeded(self) -> None:
        """A 200: counted in the goodput; lets the adaptive rate recover."""
        adaptive = self._adaptive
        if adaptive is None or self._bucket is None:
            return
        now = self._clock()
        rate = adaptive.on_success(now)
        if rate != self._bucket.rate:
            self._bucket.set_rate(rate, now)
