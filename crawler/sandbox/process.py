"""The sandbox in a child process: for the demo, the benchmarks and process-level tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

READY_PREFIX = "sandbox listening on "


@contextlib.contextmanager
def sandbox_process(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``python -m crawler sandbox --port 0 ARGS``; yield its URL and process.

    Waits for the ready line the command prints; stops the child with SIGTERM
    (SIGKILL after 10 s) on exit.
    """
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "crawler", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"the sandbox did not start: {line.strip()!r}")
        yield line[len(READY_PREFIX) :].strip(), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
