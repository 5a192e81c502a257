"""Processes under measurement: the sandbox server, and one contender at a time.

The sandbox runs in its own process (``python -m crawler sandbox``), so its
CPU is never charged to a contender. A contender is a child process; its CPU
time is the user+sys that psutil reports for the children this process has
waited for (the delta around one ``wait``, so exactly that child and its own
children), and its peak RSS is sampled every 20 ms with psutil over the child
and all its descendants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs installed; used for a few calls

from crawler.sandbox.process import sandbox_process

PYTHON = sys.executable
AK = "BENCHAK0000000000000"
SK = "bench-secret-key-not-a-real-one"
RSS_SAMPLE_SECONDS = 0.02


@dataclass(frozen=True)
class SandboxSpec:
    """What the sandbox serves for one scenario."""

    namespaces: int
    repos: int
    tags: int
    latency: float = 0.0
    rate_limit: float | None = None
    rate_burst: int = 1
    #: The window the sandbox's 429 message states its limit in; None: it states none.
    stated_window: str | None = "minute"
    seed: int = 7
    #: Tags of each namespace's repositories in turn (cycled; overrides ``tags``).
    tag_counts: tuple[int, ...] = ()
    #: Answers the sandbox keeps built: the whole catalogue when it fits, so that
    #: no contender pays for building a body another one found cached.
    cache_size: int = 16384
    #: Every tag with all 15 fields, as the SDKs document the service (the sandbox's
    #: default leaves ``updated`` out of ~4%, which list mode must fetch one by one).
    all_fields: bool = False

    @property
    def size(self) -> int:
        """Targets in the catalogue."""
        if self.tag_counts:
            per_namespace = sum(
                self.tag_counts[r % len(self.tag_counts)] for r in range(self.repos)
            )
            return self.namespaces * per_namespace
        return self.namespaces * self.repos * self.tags


@dataclass
class Sandbox:
    """A running sandbox process and the targets file it wrote."""

    url: str
    targets: Path
    process: subprocess.Popen[str]

    def cpu_seconds(self) -> float:
        """CPU the sandbox has used so far (to tell whether it was the bottleneck)."""
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)


@contextlib.contextmanager
def sandbox(spec: SandboxSpec, workdir: Path) -> Iterator[Sandbox]:
    """Start ``python -m crawler sandbox`` on a free port; stop it (SIGTERM) on exit."""
    targets = workdir / f"targets-{spec.size}.txt"
    command = [
        "--seed",
        str(spec.seed),
        "--namespaces",
        str(spec.namespaces),
        "--repos",
        str(spec.repos),
        "--tags",
        str(spec.tags),
        "--latency",
        str(spec.latency),
        "--ak",
        AK,
        "--sk",
        SK,
        "--cache-size",
        str(spec.cache_size),
        "--targets-out",
        str(targets),
    ]
    if spec.rate_limit is not None:
        command += ["--rate-limit", str(spec.rate_limit), "--rate-burst", str(spec.rate_burst)]
        command += ["--stated-window", spec.stated_window or "none"]
    if spec.all_fields:
        command.append("--all-fields")
    if spec.tag_counts:
        command += ["--tag-counts", ",".join(str(count) for count in spec.tag_counts)]
    with sandbox_process(*command) as (url, process):
        yield Sandbox(url, targets, process)


@dataclass(frozen=True)
class Measurement:
    """One contender run."""

    rows: int
    errors: int
    throttled: int
    elapsed: float
    """Seconds from the first request to the last answer, as the contender timed it."""
    cpu: float
    """User+sys seconds of the whole process (start-up included)."""
    peak_rss: int
    """Bytes, the most the process and its descendants held at once (sampled)."""
    wall: float
    """Seconds from spawn to exit."""
    requests: int = 0
    """HTTP requests sent (retries included)."""

    @property
    def rows_per_second(self) -> float:
        """Rows over the contender's own elapsed time."""
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_per_10k(self) -> float:
        """CPU seconds per 10,000 rows."""
        return self.cpu / self.rows * 10_000 if self.rows else float("nan")


class _RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._process = psutil.Process(pid)
        self._done = threading.Event()
        self.peak = 0

    def run(self) -> None:
        while not self._done.is_set():
            try:
                rss = self._process.memory_info().rss
                for child in self._process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self._done.wait(RSS_SAMPLE_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_measured(command: Sequence[str], env: dict[str, str]) -> tuple[int, str, str, Measurement]:
    """Run ``command``; its exit status, stdout, stderr and what it cost (counts left at 0)."""
    me = psutil.Process()
    before = me.cpu_times()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True)
        sampler = _RssSampler(process.pid)
        sampler.start()
        status = process.wait()
        wall = time.perf_counter() - started
        sampler.stop()
        after = me.cpu_times()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if status not in (0, 1):
        raise RuntimeError(f"{command[:4]} exited {status}: {stderr[-2000:]}")
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return status, stdout, stderr, Measurement(0, 0, 0, 0.0, cpu, sampler.peak, wall)


def child_env() -> dict[str, str]:
    """The environment for a contender: credentials for AK/SK, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWR_", "CLOUD_SDK_"))}
    env.pop("JOB_COMPLETION_INDEX", None)
    env["CLOUD_SDK_AK"] = AK
    env["CLOUD_SDK_SK"] = SK
    return env


def run_crawler(
    endpoint: str,
    targets: Path,
    out: Path,
    *,
    concurrency: int,
    rate: float,
    burst: int = 1,
    extra: Sequence[str] = (),
) -> Measurement:
    """swr-crawler, the real CLI, writing Parquet under ``out`` and signing with AK/SK.

    ``--mode detail``: one ShowRepoTag request a target, as every other contender sends
    (a targets file's default, ``auto``, may list repositories instead; the inventory
    scenario measures that)."""
    args = ["--targets", str(targets), "--concurrency", str(concurrency), "--rate", str(rate)]
    args += ["--burst", str(burst), "--mode", "detail", *extra]
    _, _, measurement = run_crawl(endpoint, out, args)
    return measurement


def run_crawl(
    endpoint: str, out: Path, args: Sequence[str]
) -> tuple[int, dict[str, Any], Measurement]:
    """``swr-crawler crawl ARGS`` against ``endpoint`` writing under ``out``, signing with
    AK/SK, JSON logs and no progress bar: its exit status, its run.json, and its
    measurement with the counts of run.json."""
    command = [PYTHON, "-m", "crawler", "crawl", *args, "--out", str(out), "--endpoint", endpoint]
    command += ["--no-progress", "--log-format", "json"]
    status, _, _, cost = run_measured(command, child_env())
    report: dict[str, Any] = json.loads((out / "run.json").read_text())
    counts = report["counts"]
    measurement = dataclasses.replace(
        cost,
        rows=int(counts["ok"]),
        errors=int(counts["errors_total"]),
        throttled=int(counts["throttled_429"]),
        elapsed=float(report["elapsed_seconds"]),
        requests=int(counts["requests"]),
    )
    return status, report, measurement


def contender_result(name: str, status: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The JSON result line a contender printed last; a clear error when it printed none.

    A contender counts its failed requests itself, so one that exits non-zero or
    without its result line crashed: the error carries the end of its stderr.
    """
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if status == 0 and lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise RuntimeError(
            f"contender {name} exited {status} without its result line; "
            f"the end of its stderr:\n{stderr[-2000:]}"
        )
    return result


def run_contender(
    name: str, endpoint: str, targets: Path, *, concurrency: int, limit: int | None
) -> Measurement:
    """One of :mod:`bench.contenders`, as its own process."""
    command = [
        PYTHON,
        "-m",
        "bench.contenders",
        name,
        "--endpoint",
        endpoint,
        "--targets",
        str(targets),
        "--concurrency",
        str(concurrency),
    ]
    if limit is not None:
        command += ["--limit", str(limit)]
    status, stdout, stderr, cost = run_measured(command, child_env())
    result = contender_result(name, status, stdout, stderr)
    return Measurement(
        rows=int(result["rows"]),
        errors=int(result["errors"]),
        throttled=int(result["throttled"]),
        elapsed=float(result["elapsed"]),
        cpu=cost.cpu,
        peak_rss=cost.peak_rss,
        wall=cost.wall,
        requests=int(result["rows"]) + int(result["errors"]),  # they never retry
    )
