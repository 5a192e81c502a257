"""One run per output: the flock on OUT/.lock, a second run refused, a stale lock taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.output.lock import OutputLock, OutputLocked
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import sandbox_in_thread
from tests.e2e_helpers import CRAWLER, TOKEN, crawl_args, sandbox_config, write_targets

ROOT = Path(__file__).resolve().parent.parent


def test_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """While one holder has the lock, another acquire fails with its pid and host."""
    with OutputLock(tmp_path / ".lock"), pytest.raises(OutputLocked) as refused:
        OutputLock(tmp_path / ".lock").acquire()
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert "another --out" in message
    with OutputLock(tmp_path / ".lock") as again:  # released: free for the next run
        assert again.previous is None  # a clean release leaves no holder behind


@pytest.mark.slow
def test_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    """A process SIGKILLed while holding the lock leaves the file; the next run takes it over."""
    code = (
        "import sys; from pathlib import Path; from crawler.output.lock import OutputLock\n"
        f"OutputLock(Path({str(tmp_path / '.lock')!r})).acquire()\n"
        "print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    with holder.stdin, holder.stdout:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(OutputLocked, match=f"pid {holder.pid}"):
            OutputLock(tmp_path / ".lock").acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / ".lock").read_bytes()  # the dead holder's record is still there
    with OutputLock(tmp_path / ".lock") as lock:
        assert lock.previous is not None
        assert lock.previous.pid == holder.pid


@pytest.mark.slow
def test_a_second_crawl_on_the_same_output_exits_75(tmp_path: Path) -> None:
    """Two overlapping crawls into one --out: the second exits 75 (EX_TEMPFAIL, "try again
    later", apart from usage errors' 2) naming the first's pid."""
    config = sandbox_config(faults=FaultConfig(latency=0.2))
    with sandbox_in_thread(config) as sb:
        targets = tmp_path / "targets.txt"
        write_targets(sb.catalogue, targets)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWR_")}
        env["SWR_AUTH_TOKEN"] = TOKEN
        args = ("--resume", "--rate", "0", "--concurrency", "2", "--no-progress")
        command = [*CRAWLER, *crawl_args(targets, tmp_path / "out", sb.url, *args)]
        first = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while sb.stats.tag_requests == 0:  # the first holds the lock once it requests
                assert first.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.002)  # polling the observable condition
            second = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
            )
        finally:
            first.send_signal(signal.SIGTERM)
            first.wait(timeout=10)
    assert second.returncode == 75
    assert f"pid {first.pid}" in second.stderr
    assert "another crawl is writing here" in second.stderr
    assert "Traceback" not in second.stderr
