"""A real crawler process killed (SIGKILL, SIGTERM, SIGINT twice, a full disk) and resumed.

The crawler runs as ``python -m crawler crawl`` against a sandbox served from a
thread of the test process (so its per-target request counts can be read).
Every wait is on an observable condition (requests served, a log line, a
file, the process exit) with a deadline; no sleep stands in for one. How long a
stop took is read from the crawler's own log timestamps, so interpreter start-up
and exit (slow on a loaded machine) are not in it.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow.parquet as pq
import pytest

from crawler.run.runner import GRACE_SECONDS
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import RunningSandbox, sandbox_in_thread
from tests.e2e_helpers import CRAWLER, TOKEN, crawl_args, row_keys, sandbox_config, write_targets

pytestmark = pytest.mark.slow  # every test here starts crawler processes

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE: dict[str, Any] = {
    "seed": 11,
    "namespaces": 3,
    "repos_per_namespace": 10,
    "tags_per_repo": 20,
}
RATE = 250.0
CONCURRENCY = 8
COMMIT_SECONDS = 0.5


@pytest.fixture(autouse=True)
def _no_stray_process() -> Iterator[None]:
    """A failed test must not leave a crawler running."""
    yield
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    STARTED.clear()


STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., RunningSandbox]]:
    """Start sandboxes in threads; all are stopped at the end of the test."""
    stack: list[Any] = []

    def start(**faults: Any) -> RunningSandbox:
        config = sandbox_config(**CATALOGUE, faults=FaultConfig(**faults))
        manager = sandbox_in_thread(config)
        stack.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@dataclass
class Scene:
    """A sandbox in a thread with its targets written to ``targets``, and the output and
    log of the crawler processes started against it."""

    sb: RunningSandbox
    keys: list[str]
    targets: Path
    out: Path
    log: Path

    def start(self, *extra: str, **options: Any) -> subprocess.Popen[bytes]:
        """A crawler process on the targets file (see :func:`start_crawl`)."""
        return start_crawl(self.sb.url, str(self.targets), self.out, self.log, *extra, **options)


def start_crawl(
    url: str,
    targets: str,
    out: Path,
    log: Path,
    *extra: str,
    token: str = TOKEN,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWR_", "CLOUD_SDK_"))}
    env["SWR_AUTH_TOKEN"] = token
    command = [
        *CRAWLER,
        *crawl_args(targets, out, url, "--resume"),
        *("--rate", str(RATE), "--concurrency", str(CONCURRENCY)),
        *("--commit-seconds", str(COMMIT_SECONDS), "--backoff-initial", "0.01"),
        *("--backoff-max", "0.05", "--no-progress", "--log-format", "json", "--seed", "1"),
        *extra,
    ]
    with log.open("ab") as err:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=preexec,
        )
    STARTED.append(proc)
    return proc


@pytest.fixture
def scene(tmp_path: Path, sandbox_factory: Callable[..., RunningSandbox]) -> Callable[..., Scene]:
    """Make the test's :class:`Scene`: a sandbox with the given faults, in ``tmp_path``."""

    def make(**faults: Any) -> Scene:
        sb = sandbox_factory(**faults)
        targets = tmp_path / "targets.txt"
        keys = write_targets(sb.catalogue, targets)
        return Scene(sb, keys, targets, tmp_path / "out", tmp_path / "crawl.log")

    return make


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)  # polling an observable condition, not standing in for one


def finish(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The exit status, once the process has exited (within ``timeout`` seconds)."""
    return proc.wait(timeout=timeout)


def stop_seconds(log: Path) -> float:
    """How long the crawler took to stop, by its own log: from its last ``crawl.stopping``
    line to the ``crawl.finished`` line after it (interpreter exit is not in it)."""
    events = [json.loads(line) for line in log.read_bytes().splitlines() if line.startswith(b"{")]
    start = max(i for i, e in enumerate(events) if e["event"] == "crawl.stopping")
    end = next(e for e in events[start:] if e["event"] == "crawl.finished")
    took = datetime.fromisoformat(end["timestamp"]) - datetime.fromisoformat(
        events[start]["timestamp"]
    )
    return took.total_seconds()


def check_output(out: Path, keys: list[str]) -> None:
    """Every file readable by pyarrow and DuckDB; every target exactly once; no temp file."""
    found: list[str] = []
    for dataset in ("tags", "errors"):
        files = sorted((out / dataset).glob("*.parquet"))
        for path in files:
            found += row_keys(pq.read_table(path))
        if files:
            rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/{dataset}/*.parquet')")
            assert rows is not None
            assert rows.fetchall() == [(sum(pq.read_metadata(p).num_rows for p in files),)]
    assert len(found) == len(set(found)), "a target has two rows"
    assert sorted(found) == sorted(keys)


def run_json(out: Path) -> dict[str, Any]:
    return json.loads((out / "run.json").read_text())  # type: ignore[no-any-return]


def test_random_kills_then_resume_lose_nothing(scene: Callable[..., Scene]) -> None:
    """SIGKILL/SIGTERM at random moments, then --resume: every file readable, every target once,
    and the targets fetched twice are bounded by what was in flight or not yet published."""
    run = scene(latency=0.01)
    rng = random.Random(20261127)
    kills = ["KILL", "TERM", "KILL", "KILL", "TERM", "KILL"]
    sigkills = 0
    for kind in kills:
        before = run.sb.stats.tag_requests
        if before >= len(run.keys) - 120:
            break  # too little left to kill mid-crawl
        proc = run.start()
        target = before + rng.randint(10, 100)  # kill once this many requests were served

        def killable(p: subprocess.Popen[bytes] = proc, n: int = target) -> bool:
            return run.sb.stats.tag_requests >= n or p.poll() is not None

        wait_for(killable, 30, "requests")
        assert proc.poll() is None, "the crawl ended before it could be killed"
        if kind == "KILL":
            proc.kill()
            sigkills += 1
            code = finish(proc, 10)
            assert code == -signal.SIGKILL
        else:
            proc.send_signal(signal.SIGTERM)
            code = finish(proc, 10)
            assert code == 1
            assert stop_seconds(run.log) < GRACE_SECONDS  # 10 ms answers: no wait for the grace
            assert run_json(run.out)["complete"] is False
            assert run_json(run.out)["stop_reason"] == "signal SIGTERM"
    proc = run.start()
    assert finish(proc, 60) == 0, run.log.read_text()[-2000:]
    check_output(run.out, run.keys)
    report = run_json(run.out)
    assert report["complete"] is True
    assert report["counts"]["targets"] == len(run.keys)
    assert [s["stop_reason"] for s in report["segments"]].count("killed") == sigkills
    assert not list(run.out.glob("*/.*.tmp"))
    twice = sum(1 for k in run.keys if run.sb.stats.per_target[k] > 1)
    assert max(run.sb.stats.per_target.values()) <= len(report["segments"])
    # per SIGKILL: the requests in flight plus the rows not yet published
    # (commit_seconds, plus a writer tick, at the request rate); SIGTERM costs ~nothing.
    bound = sigkills * (CONCURRENCY + RATE * (COMMIT_SECONDS * 1.25 + 0.25))
    print(
        f"\n{len(run.keys)} targets, {sigkills} SIGKILLs and {len(kills) - sigkills} SIGTERMs: "
        f"{twice} targets fetched twice ({twice / max(sigkills, 1):.0f} per SIGKILL; "
        f"bound {bound / max(sigkills, 1):.0f} per SIGKILL)"
    )
    assert twice <= bound


def test_sigterm_lets_requests_in_flight_finish(scene: Callable[..., Scene]) -> None:
    """SIGTERM: no new request, the ones in flight are answered and recorded, exit 1 at once."""
    run = scene(latency=0.4)
    proc = run.start()
    wait_for(lambda: run.sb.stats.in_flight >= CONCURRENCY, 20, "requests in flight")
    proc.send_signal(signal.SIGTERM)
    code = finish(proc, 10)
    assert code == 1
    assert stop_seconds(run.log) < GRACE_SECONDS  # 0.4 s answers, not the whole grace
    report = run_json(run.out)
    assert report["complete"] is False
    tags = sum(pq.read_metadata(p).num_rows for p in (run.out / "tags").glob("*.parquet"))
    assert tags == run.sb.stats.tag_requests  # every request sent was answered and recorded
    assert 0 < tags < len(run.keys)


def test_second_sigint_exits_at_once(scene: Callable[..., Scene]) -> None:
    """A second SIGINT does not wait for the grace period and leaves no unreadable file."""
    run = scene(latency=0.01, slow_rate=0.2, slow_seconds=30.0)
    proc = run.start("--timeout", "60")
    wait_for(lambda: any((run.out / "tags").glob("*.parquet")), 20, "a published file")
    wait_for(lambda: run.sb.stats.in_flight > 0, 20, "a slow request in flight")
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: b"crawl.stopping" in run.log.read_bytes(), 10, "the first signal handled")
    proc.send_signal(signal.SIGINT)
    code = finish(proc, 10)
    assert code == 1
    assert b"crawl.stopping_now" in run.log.read_bytes()
    assert stop_seconds(run.log) < GRACE_SECONDS  # the slow answers take 30 s
    assert run_json(run.out)["complete"] is False
    assert run_json(run.out)["stop_reason"] == "second signal"
    assert not list(run.out.glob("*/.*.tmp"))
    for path in run.out.glob("*/*.parquet"):
        pq.read_table(path)
    assert len(run.keys) > 0


def test_sigterm_while_reading_stdin_that_stays_open(scene: Callable[..., Scene]) -> None:
    """Targets from a pipe whose writer stays open: SIGTERM still ends the run within seconds."""
    run = scene()
    proc = start_crawl(run.sb.url, "-", run.out, run.log, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(("\n".join(run.keys[:20]) + "\n").encode())
        proc.stdin.flush()
        # The intake now waits in a read for more lines (a batch is 2048 or EOF).
        wait_for(lambda: b"crawl.started" in run.log.read_bytes(), 20, "the crawl to start")
        proc.send_signal(signal.SIGTERM)
        code = finish(proc, 10)
    assert code == 1
    assert stop_seconds(run.log) < GRACE_SECONDS  # the read that waits for more lines is abandoned
    report = run_json(run.out)
    assert report["complete"] is False
    assert report["stop_reason"] == "signal SIGTERM"


def test_full_disk_fails_clearly_and_leaves_no_broken_file(scene: Callable[..., Scene]) -> None:
    """A write that fails (file size limit, as a full disk) stops the run: exit 1, a clear
    message, no visible broken .parquet, a summary that counts only the published rows;
    --resume on a healthy disk then completes."""
    run = scene()

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (24_000, 24_000))

    proc = run.start(
        "--commit-seconds",
        "30",
        *("--log-format", "console"),  # the summary on stderr, in the log, beside the messages
        preexec=small_files,
    )
    code = finish(proc, 30)
    text = run.log.read_text()
    assert code == 1, text[-2000:]
    assert "cannot write the output" in text
    assert "File too large" in text
    assert not list(run.out.glob("*/*.tmp"))
    for path in run.out.glob("*/*.parquet"):
        pq.read_table(path)
    assert run_json(run.out)["complete"] is False
    published = sum(pq.read_metadata(p).num_rows for p in run.out.glob("tags/*.parquet"))
    assert run_json(run.out)["counts"]["ok"] == published
    (summary,) = (line for line in text.splitlines() if line.startswith("  targets "))
    assert f": ok {published}, " in summary, summary
    assert "not published: ok " in text
    proc = run.start()
    assert finish(proc, 60) == 0
    check_output(run.out, run.keys)


def test_cli_bad_token_message_then_resume_finishes(scene: Callable[..., Scene]) -> None:
    """A refused token: stderr says authentication failed, which method and how to fix, exit 1;
    --resume with the good token then records every target exactly once."""
    run = scene(latency=0.005)
    proc = run.start(token="expired")
    assert finish(proc, 30) == 1
    text = run.log.read_text()
    assert "authentication failed (token)" in text
    assert "SWR_AUTH_TOKEN" in text
    assert "--resume" in text
    assert run.sb.stats.tag_requests <= CONCURRENCY
    proc = run.start()
    assert finish(proc, 60) == 0
    check_output(run.out, run.keys)


def test_sighup_stops_like_sigterm(scene: Callable[..., Scene]) -> None:
    """SIGHUP (a closed terminal) is a graceful stop: run.json ended, published files, exit 1."""
    run = scene(latency=0.05)
    proc = run.start()
    wait_for(lambda: any((run.out / "tags").glob("*.parquet")), 20, "a published file")
    proc.send_signal(signal.SIGHUP)
    assert finish(proc, 20) == 1
    report = run_json(run.out)
    assert report["stop_reason"] == "signal SIGHUP"
    assert report["ended_at"] is not None
    assert report["complete"] is False


def test_sigterm_during_a_retry_after_pause_stops_at_once(scene: Callable[..., Scene]) -> None:
    """Every request answered 429 Retry-After: 30: nothing is in flight during the pause,
    so SIGTERM ends the run without waiting out the 5 s grace."""
    run = scene(retry_after_rate=1.0, retry_after_seconds=30.0)
    proc = run.start("--backoff-max", "30")
    wait_for(lambda: b"crawl.paused" in run.log.read_bytes(), 20, "a Retry-After pause")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc, 20) == 1
    assert stop_seconds(run.log) < GRACE_SECONDS / 2
    assert run_json(run.out)["stop_reason"] == "signal SIGTERM"


def test_sigterm_stops_a_read_of_dev_zero(
    tmp_path: Path, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    """--targets /dev/zero (an endless line) is read by the crawl, and SIGTERM stops it."""
    sb = sandbox_factory()
    out, log = tmp_path / "out", tmp_path / "crawl.log"
    proc = start_crawl(sb.url, "/dev/zero", out, log)
    wait_for(lambda: b"crawl.started" in log.read_bytes(), 20, "the crawl to start")
    proc.send_signal(signal.SIGTERM)
    assert finish(proc, 20) == 1
    report = run_json(out)
    assert (report["complete"], report["stop_reason"]) == (False, "signal SIGTERM")


def test_a_log_reader_going_away_ends_the_run_incomplete(
    tmp_path: Path, sandbox_factory: Callable[..., RunningSandbox]
) -> None:
    """stderr is a pipe whose reader exits (``2>&1 | head -1``): the run records why it
    stopped, is not complete, and exits 1."""
    sb = sandbox_factory()
    write_targets(sb.catalogue, tmp_path / "targets.txt")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWR_", "CLOUD_SDK_"))}
    env["SWR_AUTH_TOKEN"] = TOKEN
    read_end, write_end = os.pipe()
    command = [*CRAWLER, *crawl_args(tmp_path / "targets.txt", out, sb.url), "--log-format", "json"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=write_end)
    STARTED.append(proc)
    os.close(write_end)
    with open(read_end, "rb") as reader:  # like head -1: one line, then gone
        reader.readline()
    assert finish(proc, 60) == 1
    report = run_json(out)
    assert report["complete"] is False
    assert "cannot write the log" in report["stop_reason"]
