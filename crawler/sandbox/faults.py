"""Fault injection for the sandbox: what the next tag-details answer will be.

Pure decisions (no I/O): :class:`FaultInjector` takes a target key and the
current time and returns an :class:`Action`; the server carries it out. Random
faults come from one seeded ``random.Random``, so a run with the same seed and
the same request order gets the same faults. Scripts make single targets
behave exactly as a test needs, request by request.

Actions (in scripts, and as the server's vocabulary)::

    "200"                      answer normally (200 with the body, or 404 if absent)
    "400" "401" "403" "404"    that status with the matching Huawei error body
    "429"                      throttled by the gateway, no Retry-After (like the real one)
    "429:retry-after=N"        429 with ``Retry-After: N`` (seconds)
    "429:retry-after-date=N"   429 with ``Retry-After`` an HTTP date N seconds ahead
    "500" "502" "503" "504"    server or gateway error
    "reset"                    the TCP connection is reset, no answer at all
    "slow"                     the normal answer after ``slow_seconds``
    "truncated"                200 whose body is cut short (invalid JSON)
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

ActionKind = Literal["normal", "status", "reset", "slow", "truncated"]

ERROR_STATUSES = frozenset({400, 401, 403, 404, 429, 500, 502, 503, 504})
SERVER_ERRORS = (500, 502, 503, 504)

_ACTION_RE = re.compile(r"(\d{3})(?::retry-after(-date)?=(\d+(?:\.\d+)?))?")


@dataclass(frozen=True, slots=True)
class Action:
    """One planned answer for one request."""

    #: normal: serve the catalogue; status: the error ``status``; the rest as named.
    kind: ActionKind
    #: HTTP status for ``kind == "status"``.
    status: int = 200
    #: Seconds for a ``Retry-After`` header (429 only), None for no header.
    retry_after: float | None = None
    #: Send ``retry_after`` as an HTTP date rather than as seconds.
    retry_after_is_date: bool = False


NORMAL = Action("normal")


def parse_action(text: str) -> Action:
    """An :class:`Action` from its script spelling; ValueError if unknown."""
    if text in ("reset", "slow", "truncated"):
        return Action(text)  # type: ignore[arg-type]  # the literal is checked just above
    match = _ACTION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"unknown fault action {text!r}")
    status = int(match.group(1))
    if status == 200 and match.group(3) is None:
        return NORMAL
    if status not in ERROR_STATUSES:
        raise ValueError(f"unknown fault action {text!r}")
    if match.group(3) is not None:
        if status != 429:
            raise ValueError(f"Retry-After is only scripted with 429: {text!r}")
        return Action(
            "status",
            429,
            retry_after=float(match.group(3)),
            retry_after_is_date=match.group(2) is not None,
        )
    return Action("status", status)


@dataclass(frozen=True)
class FaultConfig:
    """What goes wrong, and how often. Rates are probabilities per tag-details request."""

    #: Seconds added to every answer (list APIs and IAM included).
    latency: float = 0.0
    #: Server-side token bucket over all SWR API requests, requests/s; None = unlimited.
    rate_limit: float | None = None
    #: Token-bucket capacity (requests allowed at once after an idle spell).
    rate_burst: int = 1
    #: The window a 429's message states ``rate_limit`` in, as the gateway does
    #: ("limit:2400,time:1 minute"); None: the message states no limit.
    stated_window: Literal["minute", "second"] | None = "minute"
    #: Probability of a random 500/502/503/504.
    error_rate: float = 0.0
    #: Probability of a TCP reset instead of an answer.
    reset_rate: float = 0.0
    #: Probability of answering only after ``slow_seconds``.
    slow_rate: float = 0.0
    #: How long a slow answer takes, seconds.
    slow_seconds: float = 10.0
    #: Probability of a 200 with a truncated, invalid JSON body.
    truncated_rate: float = 0.0
    #: Probability of a 429 that carries ``Retry-After: retry_after_seconds``.
    retry_after_rate: float = 0.0
    #: The ``Retry-After`` value of those 429s, seconds.
    retry_after_seconds: float = 1.0
    #: Seed of all the randomness above.
    seed: int = 0
    #: Per target ``"namespace/repository:tag"``: the actions of its successive
    #: requests; once used up the target behaves normally. A listing has a script
    #: too, keyed ``"namespaces"``, ``"repos:NAMESPACE"`` or
    #: ``"tags:NAMESPACE/REPOSITORY"``: one action per page requested.
    scripts: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "slow_rate", "truncated_rate", "retry_after_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive (or None for no limit)")
        if self.rate_burst < 1:
            raise ValueError("rate_burst must be at least 1")
        for actions in self.scripts.values():
            for action in actions:
                parse_action(action)  # fail at configuration time, not mid-run
        # Frozen means frozen: keep a read-only copy the caller cannot change.
        frozen = {key: tuple(actions) for key, actions in self.scripts.items()}
        object.__setattr__(self, "scripts", MappingProxyType(frozen))


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up. Pure."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False means over the limit."""
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FaultInjector:
    """The fault state of one running sandbox: scripts left, the random stream, the bucket."""

    def __init__(self, config: FaultConfig, now: float) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._scripts = {
            key: deque(parse_action(action) for action in actions)
            for key, actions in config.scripts.items()
        }
        self._bucket = (
            None
            if config.rate_limit is None
            else TokenBucket(config.rate_limit, config.rate_burst, now)
        )
        self._any_random = any(
            (
                config.error_rate,
                config.reset_rate,
                config.slow_rate,
                config.truncated_rate,
                config.retry_after_rate,
            )
        )

    def admit(self, now: float) -> bool:
        """False when the request is over the server's rate limit (answer 429 APIG.0308)."""
        return self._bucket is None or self._bucket.take(now)

    def script_left(self, key: str) -> int:
        """How many scripted actions are still waiting for ``key``."""
        queue = self._scripts.get(key)
        return 0 if queue is None else len(queue)

    def next_action(self, key: str) -> Action:
        """The action for the next tag-details request to ``key``."""
        if self._scripts:
            queue = self._scripts.get(key)
            if queue:
                action = queue.popleft()
                if not queue:
                    del self._scripts[key]
                return action
        if not self._any_random:
            return NORMAL
        config = self.config
        roll = self._random.random()
        threshold = config.error_rate
        if roll < threshold:
            return Action("status", self._random.choice(SERVER_ERRORS))
        threshold += config.reset_rate
        if roll < threshold:
            return Action("reset")
        threshold += config.slow_rate
        if roll < threshold:
            return Action("slow")
        threshold += config.truncated_rate
        if roll < threshold:
            return Action("truncated")
        threshold += config.retry_after_rate
        if roll < threshold:
            return Action("status", 429, retry_after=config.retry_after_seconds)
        return NORMAL


# -- the answers' bodies -------------------------------------------------------
# SWR mixes error body styles (see docs/swr-api.md, "Error bodies"); each status
# here keeps one style, so a test knows which one it gets.


def swr_error(code: str, message: str) -> dict[str, object]:
    """The current SWR style: the old ``errors`` list and the new flat fields together."""
    return {
        "errors": [{"errorCode": code, "errorMessage": message, "detail": ""}],
        "error_code": code,
        "error_msg": message,
    }


def swr_error_list_only(code: str, message: str) -> dict[str, object]:
    """The old SWR style: only the ``errors`` list."""
    return {"errors": [{"errorCode": code, "errorMessage": message, "detail": ""}]}


def gateway_error(code: str, message: str) -> dict[str, str]:
    """The API gateway's style (APIG.xxxx codes)."""
    return {"error_code": code, "error_msg": message}


def throttled_error(
    rate: float | None, window: Literal["minute", "second"] | None = "minute"
) -> dict[str, str]:
    """The gateway's 429 body: it states the limit (``rate`` requests/s) per ``window``.

    Without a ``rate`` (a scripted 429 on an unlimited sandbox) or a ``window``
    the message states no limit.
    """
    message = "The throttling threshold has been reached"
    if rate is not None and window is not None:
        limit = max(1, round(rate * (60 if window == "minute" else 1)))
        message += f": policy user over ratelimit,limit:{limit},time:1 {window}"
    return gateway_error("APIG.0308", message)


#: The body of each error status the tag-details route answers.
ERROR_BODIES: Mapping[int, Mapping[str, object]] = MappingProxyType(
    {
        400: swr_error_list_only("SVCSTG.SWR.4000014", "Bad request parameters"),
        401: gateway_error("APIG.1002", "Incorrect token or token resolution failed"),
        403: swr_error("SVCSTG.SWR.4030170", "Insufficient permissions"),
        404: swr_error("SVCSTG.SWR.4040010", "Image not found"),
        500: {"errorCode": "SVCSTG.SWR.5000002", "errorMsg": "Failed to get image info"},
        502: gateway_error("APIG.0202", "Backend unavailable"),
        503: gateway_error("APIG.0203", "Backend service unavailable"),
        504: gateway_error("APIG.0201", "Backend timeout"),
    }
)
