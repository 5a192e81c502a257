"""The bench's contenders count throttled requests, and the harness names a contender's crash."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import pytest

from bench.contenders import RUNNERS
from bench.harness import contender_result
from crawler.sandbox import Catalogue, FaultConfig, RunningSandbox, SandboxConfig, sandbox_in_thread

AK, SK = "AKBENCHTEST", "bench-test-secret"
#: Every request to these targets is answered 429 (twice: the runner is called per contender).
THROTTLED = [("bench", "throttled", f"t{i}") for i in range(3)]
OK = list(islice(Catalogue().targets(), 20))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    """One sandbox in a thread whose THROTTLED targets always answer 429."""
    scripts = {f"{ns}/{repo}:{tag}": ["429"] * len(RUNNERS) for ns, repo, tag in THROTTLED}
    config = SandboxConfig(credentials={AK: SK}, faults=FaultConfig(scripts=scripts))
    with sandbox_in_thread(config) as running:
        yield running


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_contender_counts_429s_as_throttled_errors(
    sandbox: RunningSandbox, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each contender finishes a crawl with 429s in it and counts them as throttled errors."""
    monkeypatch.setenv("CLOUD_SDK_AK", AK)
    monkeypatch.setenv("CLOUD_SDK_SK", SK)
    targets = [(ns, repo.replace("/", "$"), tag) for ns, repo, tag in OK[:10] + THROTTLED + OK[10:]]
    tally = RUNNERS[name](sandbox.url, targets, 4)
    assert (tally.rows, tally.errors, tally.throttled) == (len(OK), len(THROTTLED), len(THROTTLED))


def test_contender_result_reads_the_last_line() -> None:
    """The harness takes the contender's last stdout line as its result."""
    stdout = 'a log line\n{"rows": 3, "errors": 1, "throttled": 1, "elapsed": 0.5}\n'
    assert contender_result("sdk-async", 0, stdout, "")["rows"] == 3


@pytest.mark.parametrize(
    ("status", "stdout"),
    [(1, ""), (1, '{"rows": 3}\n'), (0, ""), (0, "Traceback (most recent call last):\n")],
)
def test_contender_crash_is_a_clear_error_with_its_stderr(status: int, stdout: str) -> None:
    """A contender that exits non-zero or prints no JSON line raises naming it, with its stderr."""
    stderr = "Traceback ...\nrequests.exceptions.RetryError: too many 429 error responses\n"
    with pytest.raises(RuntimeError, match="contender sdk-async exited") as raised:
        contender_result("sdk-async", status, stdout, stderr)
    assert "RetryError: too many 429 error responses" in str(raised.value)
