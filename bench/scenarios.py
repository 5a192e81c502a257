"""The benchmark scenarios, their figures of merit and the targets they are held to.

Each throughput scenario starts one sandbox process and runs the contenders
on the same targets file, alternating (a b c d, a b c d, ...) so that a noisy
neighbour hurts them all alike; the medians of the runs are reported. The
figures of merit are ratios (swr-crawler against the SDK, against the bare
aiohttp ceiling, against the ideal rate), which survive a noisy machine
better than absolute times.

The slow contenders (the SDK's) crawl only the first ``limit`` targets of the
same file: their rate is steady after a second, and the whole list would
take minutes per run.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import (
    AK,
    SK,
    Measurement,
    Sandbox,
    SandboxSpec,
    run_contender,
    run_crawler,
    sandbox,
)
from crawler.sandbox.server import SandboxConfig, sandbox_in_thread

CRAWLER = "swr-crawler"
#: swr-crawler with --uvloop; CRAWLER runs on asyncio's own loop (the default).
CRAWLER_UVLOOP = "swr-crawler-uvloop"
SDK_THREADS = "sdk-threads"
SDK_ASYNC = "sdk-async"
CEILING = "aiohttp"
#: The bare loop that also parses each answer and keeps it (``cpu`` only): a second
#: baseline for CPU a row, since the ceiling throws away what it fetched.
CEILING_JSON = "aiohttp-json"
CONTENDERS = (CRAWLER, CRAWLER_UVLOOP, SDK_THREADS, SDK_ASYNC, CEILING, CEILING_JSON)
#: The contenders of the scenarios that do not compare event loops.
ONE_LOOP = (CRAWLER, SDK_THREADS, SDK_ASYNC, CEILING)
CONCURRENCY = 32
#: The converge scenarios: --rate at five times the server's limit.
CONVERGE_LIMIT = 40.0
CONVERGE_RATE = 5 * CONVERGE_LIMIT


@dataclass(frozen=True)
class Throughput:
    """A side-by-side scenario."""

    name: str
    title: str
    spec: SandboxSpec
    #: swr-crawler's --rate and --burst (0 = unlimited).
    rate: float = 0.0
    burst: int = 1
    #: Targets each contender crawls (None = all of the file).
    limits: dict[str, int | None] = field(default_factory=dict)
    #: Request every target once, unmeasured, before the runs (builds the
    #: sandbox's answers, warms the page cache).
    warm_up: bool = False
    #: Only these contenders take part (None: all that were asked for).
    only: tuple[str, ...] | None = None
    #: Requests in flight, every contender alike.
    concurrency: int = CONCURRENCY


@dataclass(frozen=True)
class Memory:
    """Peak RSS of swr-crawler for a small and a large targets file."""

    name: str
    title: str
    spec: SandboxSpec
    sizes: tuple[int, int]


@dataclass(frozen=True)
class Startup:
    """Time from spawning ``swr-crawler crawl`` (one target, AK/SK) to its first request."""

    name: str
    title: str
    #: Spawns measured per run of the bench (start-up times are short and noisy).
    spawns: int = 5


Scenario = Throughput | Memory | Startup


def scenarios(quick: bool) -> list[Scenario]:
    """The scenarios of a full run, or smaller ones for ``--quick``."""
    scale = 4 if quick else 1
    rate = 400.0
    return [
        Throughput(
            "cpu",
            "zero latency (CPU-bound)",
            SandboxSpec(
                namespaces=4 // min(scale, 2),
                repos=50 // min(scale, 2),
                tags=100,
                cache_size=20_000,
            ),
            limits={SDK_THREADS: 3000 // scale, SDK_ASYNC: 3000 // scale},
            warm_up=True,
        ),
        Throughput(
            "latency",
            "50 ms latency (latency-bound)",
            SandboxSpec(namespaces=4, repos=20 // scale, tags=80, latency=0.05),
            limits={SDK_THREADS: 1600 // scale, SDK_ASYNC: 640 // scale},
            only=ONE_LOOP,
            # Without it the first contender of the first round (swr-crawler) has the
            # sandbox build every answer: 470 rows/s in that run, 528-534 in the next two.
            warm_up=True,
        ),
        Throughput(
            "rate",
            f"rate-bound (--rate {rate:g}, server limit {rate * 1.1:g}/s)",
            SandboxSpec(
                namespaces=4,
                repos=15 // min(scale, 3),
                tags=100,
                rate_limit=rate * 1.1,
                # A per-minute gateway quota tolerates any burst within its
                # minute; a tenth of a second's worth is far stricter.
                rate_burst=round(rate * 1.1 / 10),
            ),
            rate=rate,
            limits={SDK_THREADS: 1000 // scale, SDK_ASYNC: 1000 // scale, CEILING: 1000 // scale},
            only=ONE_LOOP,
        ),
        Throughput(
            "one-off",
            f"a one-off crawl of {5000 // scale:,} targets, --concurrency 16, AK/SK, "
            "process wall time (start-up included)",
            SandboxSpec(namespaces=5, repos=10 // scale, tags=100, cache_size=5000),
            only=(CRAWLER, SDK_THREADS),
            concurrency=16,
            warm_up=True,
        ),
        *(
            Throughput(
                name,
                f"--rate {CONVERGE_RATE:g} vs a server limit of {CONVERGE_LIMIT:g}/s "
                f"(burst 5), {what}",
                SandboxSpec(
                    namespaces=1,
                    repos=4 // min(scale, 2),
                    tags=100,
                    rate_limit=CONVERGE_LIMIT,
                    rate_burst=5,
                    stated_window=window,
                ),
                rate=CONVERGE_RATE,
                only=(CRAWLER,),
            )
            for name, what, window in (
                ("converge", "its 429s state the limit", "minute"),
                ("converge-blind", "its 429s do not state it", None),
            )
        ),
        Startup("startup", "time to the first request, one target, AK/SK"),
        Memory(
            "memory",
            "peak RSS, small vs large targets file",
            SandboxSpec(namespaces=10, repos=100, tags=1000),
            sizes=(50_000, 200_000) if quick else (100_000, 1_000_000),
        ),
    ]


def median_of(runs: list[Measurement]) -> dict[str, float]:
    """The medians of one contender's runs."""
    return {
        "rows_per_second": statistics.median(m.rows_per_second for m in runs),
        "cpu_per_10k_rows": statistics.median(m.cpu_per_10k for m in runs),
        "peak_rss_mb": statistics.median(m.peak_rss for m in runs) / 2**20,
        "throttled_429": statistics.median(m.throttled for m in runs),
        "throttled_share_max": max(m.throttled / m.requests if m.requests else 0.0 for m in runs),
        "throttled_429_max": max(m.throttled for m in runs),
        "errors_max": max(m.errors for m in runs),
        "rows": statistics.median(m.rows for m in runs),
        "wall_seconds": statistics.median(m.wall for m in runs),
    }


def _run_one(
    scenario: Throughput, name: str, box: Sandbox, workdir: Path, run: int
) -> tuple[Measurement, float]:
    """One contender run; also the sandbox's CPU seconds during it."""
    before = box.cpu_seconds()
    if name in (CRAWLER, CRAWLER_UVLOOP):
        out = workdir / f"out-{scenario.name}-{run}"
        try:
            result = run_crawler(
                box.url,
                box.targets,
                out,
                concurrency=scenario.concurrency,
                rate=scenario.rate,
                burst=scenario.burst,
                extra=("--uvloop",) if name == CRAWLER_UVLOOP else (),
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)
    else:
        result = run_contender(
            name,
            box.url,
            box.targets,
            concurrency=scenario.concurrency,
            limit=scenario.limits.get(name),
        )
    return result, box.cpu_seconds() - before


def run_throughput(
    scenario: Throughput,
    workdir: Path,
    runs: int,
    contenders: tuple[str, ...],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Run the contenders alternately ``runs`` times; medians and figures."""
    if scenario.only is not None:
        contenders = tuple(name for name in contenders if name in scenario.only)
    measured: dict[str, list[Measurement]] = {name: [] for name in contenders}
    sandbox_cpu: dict[str, list[float]] = {name: [] for name in contenders}
    with sandbox(scenario.spec, workdir) as box:
        if scenario.warm_up:
            run_contender(CEILING, box.url, box.targets, concurrency=CONCURRENCY, limit=None)
        for run in range(runs):
            for name in contenders:
                result, server_cpu = _run_one(scenario, name, box, workdir, run)
                measured[name].append(result)
                sandbox_cpu[name].append(server_cpu / result.elapsed if result.elapsed else 0.0)
                say(
                    f"  {scenario.name} run {run + 1}/{runs} {name:12s} "
                    f"{result.rows_per_second:8.0f} rows/s  {result.cpu_per_10k:6.2f} CPU s/10k  "
                    f"{result.peak_rss / 2**20:6.0f} MB  429s {result.throttled}  "
                    f"sandbox {server_cpu / result.elapsed:.0%} of a core"
                )
    results: dict[str, Any] = {}
    for name in contenders:
        summary: dict[str, Any] = dict(median_of(measured[name]))
        summary["sandbox_core_share"] = statistics.median(sandbox_cpu[name])
        summary["runs"] = [_run_dict(m) for m in measured[name]]
        results[name] = summary
    return {
        "title": scenario.title,
        "concurrency": scenario.concurrency,
        "rate": scenario.rate,
        "sandbox": _spec_dict(scenario.spec),
        "targets": scenario.spec.size,
        "limits": scenario.limits,
        "contenders": results,
        "figures": figures(scenario, results),
    }


def figure(
    name: str, value: float, target: float | None, *, at_most: bool = False
) -> dict[str, Any]:
    """One figure of merit: its value, its target (None: for reference) and whether it is met."""
    met = None if target is None else (value <= target if at_most else value >= target)
    return {"figure": name, "value": value, "target": target, "met": met}


def figures(scenario: Throughput, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ratios this scenario is judged by, each with its target."""
    out: list[dict[str, Any]] = []
    if CRAWLER not in results:
        return out
    ours = results[CRAWLER]["rows_per_second"]

    def add(name: str, value: float, target: float | None, *, at_most: bool = False) -> None:
        out.append(figure(name, value, target, at_most=at_most))

    if scenario.name == "cpu":
        speed = {name: results[name]["rows_per_second"] for name in results}
        for other, name, target in (
            (SDK_THREADS, "swr-crawler / SDK thread pool", 5),
            (SDK_ASYNC, "swr-crawler / SDK async client", 5),
            (CEILING, "swr-crawler / aiohttp ceiling", 0.7),
        ):
            if other in speed:
                add(name, ours / speed[other], target)
        cpu = {name: results[name]["cpu_per_10k_rows"] for name in results}
        if CRAWLER_UVLOOP in cpu:
            # Informational: what uvloop saves (below 1 is a win), same run, alternating.
            add(
                "swr-crawler CPU a row, uvloop / asyncio loop",
                cpu[CRAWLER_UVLOOP] / cpu[CRAWLER],
                None,
            )
        for crawler, name, target in (
            (CRAWLER, "swr-crawler (asyncio loop) CPU a row / ceiling's", 1.1),
            (CRAWLER_UVLOOP, "swr-crawler (uvloop) CPU a row / ceiling's", 1.0),
        ):
            if CEILING in cpu and crawler in cpu:
                add(name, cpu[crawler] / cpu[CEILING], target, at_most=True)
        if CEILING_JSON in cpu:
            # Informational: against a loop that at least parses and keeps each answer.
            add("swr-crawler CPU a row / aiohttp-json's", cpu[CRAWLER] / cpu[CEILING_JSON], None)
    elif scenario.name == "one-off" and SDK_THREADS in results:
        walls = {name: results[name]["wall_seconds"] for name in results}
        add("SDK thread pool wall / swr-crawler wall", walls[SDK_THREADS] / walls[CRAWLER], 5)
    elif scenario.name == "latency":
        ideal = CONCURRENCY / scenario.spec.latency
        add(f"swr-crawler / ideal {ideal:g} rows/s", ours / ideal, 0.95)
        if CEILING in results:
            # Informational: how close the ceiling itself gets to the ideal.
            add("aiohttp ceiling / ideal", results[CEILING]["rows_per_second"] / ideal, None)
            add("swr-crawler / aiohttp ceiling", ours / results[CEILING]["rows_per_second"], None)
    elif scenario.name == "rate":
        add(f"swr-crawler / --rate {scenario.rate:g}", ours / scenario.rate, 0.97)
        throttled = results[CRAWLER]["throttled_429_max"]
        add("swr-crawler 429s (max of runs)", throttled, 0, at_most=True)
    elif scenario.name.startswith("converge"):
        limit = scenario.spec.rate_limit
        assert limit is not None
        stated = scenario.spec.stated_window is not None
        share = results[CRAWLER]["throttled_share_max"]
        add(
            "swr-crawler 429s / requests (max of runs)",
            share,
            0.05 if stated else 0.15,
            at_most=True,
        )
        add(f"swr-crawler / server limit {limit:g}/s", ours / limit, 0.9 if stated else None)
    return out


def run_memory(
    scenario: Memory, workdir: Path, runs: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """swr-crawler on the first ``small`` and on ``large`` targets of one catalogue."""
    small, large = scenario.sizes
    by_size: dict[int, list[Measurement]] = {small: [], large: []}
    with sandbox(scenario.spec, workdir) as box:
        files = {size: _prefix(box.targets, size, workdir) for size in (small, large)}
        for run in range(runs):
            for size in (small, large):
                out = workdir / f"out-memory-{size}"
                try:
                    result = run_crawler(box.url, files[size], out, concurrency=CONCURRENCY, rate=0)
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                by_size[size].append(result)
                say(
                    f"  memory run {run + 1}/{runs} {size:>9,} targets  peak RSS "
                    f"{result.peak_rss / 2**20:6.1f} MB  {result.rows_per_second:6.0f} rows/s  "
                    f"{result.cpu_per_10k:5.2f} CPU s/10k"
                )
    peaks = {size: statistics.median(m.peak_rss for m in by_size[size]) / 2**20 for size in by_size}
    return {
        "title": scenario.title,
        "sandbox": _spec_dict(scenario.spec),
        "concurrency": CONCURRENCY,
        "sizes": {
            str(size): {**median_of(by_size[size]), "runs": [_run_dict(m) for m in by_size[size]]}
            for size in by_size
        },
        "figures": [
            figure(f"peak RSS at {large:,} targets, MB", peaks[large], 150, at_most=True),
            # Exact dedup must remember every target: 16 bytes each in SeenSet's
            # table (24 while it doubles). More growth than 32 bytes a target
            # would mean something else (rows, buffers, logs) grows with N.
            figure(
                f"peak RSS growth per target, {small:,} -> {large:,}, bytes",
                (peaks[large] - peaks[small]) * 2**20 / (large - small),
                32,
                at_most=True,
            ),
        ],
    }


def run_startup(
    scenario: Startup, workdir: Path, runs: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Spawn the crawler on one target; when its first request reaches the sandbox (the
    sandbox's clock, in this process's thread) and when it has exited, from the spawn."""
    config = SandboxConfig(
        namespaces=1, repos_per_namespace=1, tags_per_repo=1, credentials={AK: SK}
    )
    first: list[float] = []
    walls: list[float] = []
    with sandbox_in_thread(config) as box:
        namespace, repository, tag = next(iter(box.catalogue.targets()))
        targets = workdir / "targets-startup.txt"
        targets.write_text(f"{namespace}/{repository}:{tag}\n", encoding="utf-8")
        for spawn in range(scenario.spawns * runs):
            box.stats.reset()
            out = workdir / f"out-startup-{spawn}"
            spawned = time.time()
            try:
                result = run_crawler(box.url, targets, out, concurrency=1, rate=0)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            arrived = box.stats.first_request_at
            if arrived is None or result.rows != 1:
                raise RuntimeError("the crawler sent no request, or its one target failed")
            first.append(arrived - spawned)
            walls.append(result.wall)
            say(f"  startup {spawn + 1}: first request {first[-1]:.3f} s, exit {walls[-1]:.3f} s")
    median_first = statistics.median(first)
    return {
        "title": scenario.title,
        "first_request_seconds": {"median": median_first, "min": min(first), "runs": first},
        "wall_seconds": {"median": statistics.median(walls), "min": min(walls), "runs": walls},
        "figures": [
            figure("time to the first request, s (median)", median_first, 0.3, at_most=True),
            figure("process wall time, one target, s (median)", statistics.median(walls), None),
        ],
    }


def _prefix(targets: Path, size: int, workdir: Path) -> Path:
    path = workdir / f"targets-first-{size}.txt"
    with targets.open(encoding="utf-8") as source, path.open("w", encoding="utf-8") as out:
        for count, line in enumerate(source):
            if count >= size:
                break
            out.write(line)
    return path


def _run_dict(m: Measurement) -> dict[str, float]:
    return {
        "rows": m.rows,
        "errors": m.errors,
        "throttled_429": m.throttled,
        "requests": m.requests,
        "elapsed": round(m.elapsed, 3),
        "rows_per_second": round(m.rows_per_second, 1),
        "cpu_seconds": round(m.cpu, 3),
        "peak_rss_mb": round(m.peak_rss / 2**20, 1),
        "wall": round(m.wall, 3),
    }


def _spec_dict(spec: SandboxSpec) -> dict[str, Any]:
    return {
        "catalogue": f"{spec.namespaces} namespaces x {spec.repos} repos x {spec.tags} tags",
        "latency": spec.latency,
        "rate_limit": spec.rate_limit,
        "rate_burst": spec.rate_burst if spec.rate_limit else None,
    }
