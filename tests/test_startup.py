"""Start-up: a command imports only what it needs (checked by module name, never by time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.sandbox.server import sandbox_in_thread
from tests.e2e_helpers import TOKEN, sandbox_config, write_targets

pytestmark = pytest.mark.slow  # each test starts an interpreter

#: ``python -m crawler ARGS`` in a fresh interpreter; then the modules it imported, as JSON
#: on the last line of stderr (the command's own output comes before it).
PROBE = """
import json, runpy, sys
sys.argv = ["swr-crawler", *sys.argv[1:]]
try:
    runpy.run_module("crawler", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def imported_by(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin", **(env or {})},
        timeout=60,
        check=False,
    )
    modules: list[str] = json.loads(proc.stderr.strip().splitlines()[-1])
    assert "crawler.cli" in modules, proc.stderr[-2000:]
    return set(modules)


def loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_crawl_help_imports_no_network_parquet_sandbox_or_loop_module() -> None:
    """`crawl --help` loads neither aiohttp, pyarrow, the runner, the sandbox, uvloop nor rich
    (structlog's rich tracebacks included)."""
    modules = imported_by(["crawl", "--help"])
    for package in (
        "aiohttp",
        "pyarrow",
        "crawler.run.runner",
        "crawler.sandbox",
        "uvloop",
        "rich",
    ):
        assert not loaded(modules, package), package


def test_a_crawl_off_a_terminal_imports_no_sandbox_no_server_and_no_rich(tmp_path: Path) -> None:
    """A real crawl (stderr not a terminal, JSON logs) never loads the sandbox, aiohttp's
    server side or rich (neither the progress bar nor structlog's rich tracebacks), nor uvloop
    (installed here, but asyncio's loop is the default)."""
    with sandbox_in_thread(sandbox_config()) as sb:
        targets = tmp_path / "targets.txt"
        write_targets(sb.catalogue, targets)
        args = ["crawl", "--targets", str(targets), "--out", str(tmp_path / "out")]
        modules = imported_by([*args, "--endpoint", sb.url], {"SWR_AUTH_TOKEN": TOKEN})
        assert sb.stats.total_requests > 0
    assert json.loads((tmp_path / "out" / "run.json").read_text())["complete"] is True
    assert loaded(modules, "aiohttp")
    assert not loaded(modules, "uvloop")
    assert not loaded(modules, "crawler.sandbox")
    assert not loaded(modules, "aiohttp.web")
    assert not loaded(modules, "rich")
