"""Fault decisions, without a network: action parsing, the token bucket, scripts, seeds."""

from __future__ import annotations

import pytest

from crawler.sandbox.faults import (
    NORMAL,
    Action,
    FaultConfig,
    FaultInjector,
    TokenBucket,
    parse_action,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200", NORMAL),
        ("404", Action("status", 404)),
        ("504", Action("status", 504)),
        ("429", Action("status", 429)),
        ("429:retry-after=3", Action("status", 429, retry_after=3.0)),
        ("429:retry-after-date=7", Action("status", 429, 7.0, retry_after_is_date=True)),
        ("reset", Action("reset")),
        ("slow", Action("slow")),
        ("truncated", Action("truncated")),
    ],
)
def test_script_actions_parse(text: str, expected: Action) -> None:
    """Each documented script action parses to the action the server carries out."""
    assert parse_action(text) == expected


@pytest.mark.parametrize("text", ["201", "418", "boom", "500:retry-after=1", "429:retry-after="])
def test_unknown_actions_are_refused_at_configuration(text: str) -> None:
    """A typo in a script fails when the config is built, not in the middle of a run."""
    with pytest.raises(ValueError, match=r"action|Retry-After"):
        FaultConfig(scripts={"a/b:c": ["200", text]})


def test_rates_are_checked() -> None:
    """A probability outside [0, 1] or a non-positive limit is a configuration error."""
    with pytest.raises(ValueError, match="error_rate"):
        FaultConfig(error_rate=1.5)
    with pytest.raises(ValueError, match="rate_limit"):
        FaultConfig(rate_limit=0)


def test_config_scripts_cannot_be_changed_afterwards() -> None:
    """The frozen config keeps its own read-only copy of the scripts."""
    scripts = {"a/b:c": ["500"]}
    config = FaultConfig(scripts=scripts)
    scripts["a/b:c"].append("404")
    assert config.scripts["a/b:c"] == ("500",)
    with pytest.raises(TypeError):
        config.scripts["x/y:z"] = ("200",)  # type: ignore[index]


def test_token_bucket_allows_burst_then_rate() -> None:
    """The bucket lets ``burst`` through at once, then one per 1/rate seconds."""
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.4) is False
    assert bucket.take(100.5) is True
    assert bucket.take(110.0)
    assert bucket.take(110.0)
    assert bucket.take(110.0)
    assert bucket.take(110.0) is False


def test_scripts_run_in_order_then_the_target_behaves_normally() -> None:
    """A script's actions come one per request, for its target only, then normal answers."""
    injector = FaultInjector(FaultConfig(scripts={"ns/r:t": ["503", "reset", "200"]}), now=0)
    assert injector.next_action("ns/other:t") == NORMAL
    assert injector.script_left("ns/r:t") == 3
    assert [injector.next_action("ns/r:t").kind for _ in range(4)] == [
        "status",
        "reset",
        "normal",
        "normal",
    ]
    assert injector.script_left("ns/r:t") == 0


def test_random_faults_are_reproducible_and_follow_the_rates() -> None:
    """Same seed, same faults; the mix matches the configured probabilities."""
    config = FaultConfig(error_rate=0.2, reset_rate=0.1, truncated_rate=0.05, seed=42)
    first = FaultInjector(config, now=0)
    second = FaultInjector(config, now=0)
    actions = [first.next_action("k") for _ in range(5000)]
    assert actions == [second.next_action("k") for _ in range(5000)]
    errors = [a for a in actions if a.kind == "status"]
    assert 850 <= len(errors) <= 1150
    assert {a.status for a in errors} == {500, 502, 503, 504}
    assert 400 <= sum(a.kind == "reset" for a in actions) <= 600
    assert 180 <= sum(a.kind == "truncated" for a in actions) <= 320
    other = FaultInjector(FaultConfig(error_rate=0.2, reset_rate=0.1, seed=43), now=0)
    assert actions != [other.next_action("k") for _ in range(5000)]


def test_retry_after_rate_sends_the_configured_seconds() -> None:
    """retry_after_rate=1 makes every answer a 429 carrying retry_after_seconds."""
    injector = FaultInjector(FaultConfig(retry_after_rate=1.0, retry_after_seconds=2.5), now=0)
    assert injector.next_action("k") == Action("status", 429, retry_after=2.5)


def test_rate_limit_admission() -> None:
    """Without a limit everything is admitted; with one, the bucket decides."""
    assert all(FaultInjector(FaultConfig(), now=0).admit(0.0) for _ in range(100))
    limited = FaultInjector(FaultConfig(rate_limit=1.0, rate_burst=2), now=0.0)
    assert [limited.admit(0.0) for _ in range(3)] == [True, True, False]
    assert limited.admit(1.0) is True
