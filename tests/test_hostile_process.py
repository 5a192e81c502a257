"""The crawler as a process against the hostile server: peak memory stays bounded whatever
the answers' size, and no secret reaches its JSON or console logs, run.json or Parquet."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.e2e_helpers import CRAWLER, crawl_args, iam_env, run_cli
from tests.hostile import hostile_in_thread
from tests.test_hostile import PASSWORD, TOKEN, assert_absent, texts_of

pytestmark = pytest.mark.slow

MIB = 1 << 20


def peak_rss(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, int]:
    """Run the crawler; return (exit status, peak RSS in bytes), sampled every 10 ms."""
    process = subprocess.Popen(
        [*CRAWLER, *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    watched = psutil.Process(process.pid)
    peak = 0
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)  # a sampling interval, not a synchronisation
    if process.poll() is None:
        process.kill()
    return process.wait(30), peak


def test_peak_memory_is_bounded_by_the_body_cap(tmp_path: Path) -> None:
    """300 MB, an endless stream and a 1 GiB gzip bomb, 4 in flight, two of each: the
    crawler's peak RSS stays near its idle size (before the cap: 2-4 GB)."""
    lines = ["ns/repo:huge", "ns/repo:endless", "ns/repo:bomb", "ns/repo:ok"] * 2
    targets = tmp_path / "targets.txt"
    targets.write_text(
        "\n".join(f"{line}{i}" if False else line for i, line in enumerate(lines)) + "\n"
    )
    env = {"PATH": "/usr/bin:/bin", "SWR_AUTH_TOKEN": TOKEN}
    with hostile_in_thread() as server:
        args = crawl_args(
            targets,
            tmp_path / "big",
            server.url,
            "--concurrency",
            "4",
            "--rate",
            "0",
            "--no-progress",
            "--max-attempts",
            "2",
        )
        status, peak = peak_rss(args, env, tmp_path)
        idle_args = crawl_args(
            targets.with_name("ok.txt"), tmp_path / "idle", server.url, "--no-progress"
        )
        targets.with_name("ok.txt").write_text("ns/repo:ok\n")
        idle_status, idle = peak_rss(idle_args, env, tmp_path)
    errors = pq.read_table(tmp_path / "big" / "errors").column("error_kind").to_pylist()
    assert sorted(set(errors)) == ["too_large"]
    assert (status, idle_status) == (1, 0)
    print(
        f"peak RSS: {peak / MIB:.0f} MiB against hostile answers, {idle / MIB:.0f} MiB for one ok"
    )
    assert peak - idle < 4 * 2 * 16 * MIB + 64 * MIB  # 4 in flight, each at most twice the cap


def test_no_secret_in_the_logs_of_a_process(tmp_path: Path) -> None:
    """JSON and console logs, run.json and Parquet of real runs (a static token echoed back,
    then an IAM login whose token is echoed) hold no spelling of any secret."""
    echoes = ["echo-json", "echo-escaped", "echo-html", "echo-repr", "echo-long", "redirect"]
    targets = tmp_path / "targets.txt"
    targets.write_text("".join(f"ns/repo:{tag}\n" for tag in echoes))
    texts: list[str] = []
    with hostile_in_thread() as server:
        runs = [
            ("json", {"SWR_AUTH_TOKEN": TOKEN}),
            ("console", {"SWR_AUTH_TOKEN": TOKEN}),
            ("json", iam_env(server.url, PASSWORD)),
            ("console", iam_env(server.url, PASSWORD)),
        ]
        for index, (log_format, env) in enumerate(runs):
            out = tmp_path / f"out{index}"
            args = crawl_args(
                targets,
                out,
                server.url,
                "--log-format",
                log_format,
                "--max-attempts",
                "1",
                "--no-progress",
            )
            done = run_cli(args, {**env, "PYTHONIOENCODING": "utf-8"}, tmp_path)
            assert done.returncode == 1, done.stderr[-2000:]
            assert "crawl.target_failed" in done.stderr
            texts += [done.stdout, done.stderr, (out / "run.json").read_text()]
            texts += texts_of(pq.read_table(out / "errors").to_pylist())
            if log_format == "json":
                assert all(
                    json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")
                )
        issued = list(server.issued)
    assert len(issued) == 2
    assert_absent([TOKEN, PASSWORD, *issued], "a process's output", texts)
