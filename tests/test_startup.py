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

AK, SK = "AKSTARTUP00000000001", "sk-startup-check-0123456789"

#: ``python -m crawler ARGS`` in a fresh interpreter; then the modules it had imported when it
#: first connected a socket (the first request's connection; null if none) and at its exit,
#: as JSON on the last line of stderr (the command's own output comes before it).
PROBE = """
import json, runpy, sys
at_connect = []
def first_connect(event, args):
    if event == "socket.connect" and not at_connect:
        at_connect.append(sorted(sys.modules))
sys.addaudithook(first_connect)
sys.argv = ["swr-crawler", *sys.argv[1:]]
try:
    runpy.run_module("crawler", run_name="__main__")
except SystemExit:
    pass
found = {"connect": at_connect[0] if at_connect else None, "exit": sorted(sys.modules)}
print(json.dumps(found), file=sys.stderr)
"""


def imported_by(
    args: list[str], env: dict[str, str] | None = None, *, when: str = "exit"
) -> set[str]:
    """The modules ``swr-crawler ARGS`` had imported at its exit, or at its first connect."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin", **(env or {})},
        timeout=60,
        check=False,
    )
    modules: list[str] | None = json.loads(proc.stderr.strip().splitlines()[-1])[when]
    assert modules is not None, f"no socket was connected: {proc.stderr[-2000:]}"
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
    """A real crawl (stderr not a terminal, JSON logs) never loads the sandbox, aiohttp (the
    transport speaks HTTP itself), rich (neither the progress bar nor structlog's rich
    tracebacks) or uvloop (installed here, but asyncio's loop is the default)."""
    with sandbox_in_thread(sandbox_config()) as sb:
        targets = tmp_path / "targets.txt"
        write_targets(sb.catalogue, targets)
        args = ["crawl", "--targets", str(targets), "--out", str(tmp_path / "out")]
        modules = imported_by([*args, "--endpoint", sb.url], {"SWR_AUTH_TOKEN": TOKEN})
        assert sb.stats.total_requests > 0
    assert json.loads((tmp_path / "out" / "run.json").read_text())["complete"] is True
    assert loaded(modules, "crawler.http.transport")
    assert not loaded(modules, "aiohttp")
    assert not loaded(modules, "uvloop")
    assert not loaded(modules, "crawler.sandbox")
    assert not loaded(modules, "rich")


def test_a_crawl_connects_for_its_first_request_before_importing_pyarrow(tmp_path: Path) -> None:
    """A fresh crawl (AK/SK) opens its first connection before it imports pyarrow (the writer
    thread imports it, for the first rows) or prometheus_client (only --metrics-file needs it);
    the Parquet files are written all the same."""
    with sandbox_in_thread(sandbox_config(credentials={AK: SK})) as sb:
        targets = tmp_path / "targets.txt"
        write_targets(sb.catalogue, targets)
        args = ["crawl", "--targets", str(targets), "--out", str(tmp_path / "out")]
        env = {"CLOUD_SDK_AK": AK, "CLOUD_SDK_SK": SK}
        modules = imported_by([*args, "--endpoint", sb.url], env, when="connect")
    assert loaded(modules, "crawler.http.transport")
    assert not loaded(modules, "pyarrow")
    assert not loaded(modules, "prometheus_client")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["complete"] is True
    assert list((tmp_path / "out" / "tags").rglob("*.parquet"))
