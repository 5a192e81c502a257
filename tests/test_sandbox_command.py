"""``swr-crawler sandbox`` as a process: the URL line, the targets file, clean signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from crawler.sandbox.command import sandbox_command

LAUNCH = "from crawler.sandbox.command import sandbox_command; sandbox_command()"


@contextmanager
def sandbox_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("sandbox listening on http://127.0.0.1:"), line
        yield process, line.removeprefix("sandbox listening on ").strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def fetch(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"X-Auth-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_process_prints_its_url_serves_and_stops_on_signal(tmp_path: Path, signum: int) -> None:
    """The child prints the URL line, writes the targets, serves them, and exits 0 on a signal."""
    targets = tmp_path / "targets.txt"
    scripts = tmp_path / "scripts.json"
    scripts.write_text(json.dumps({"x/y:z": ["503"]}))
    args = ["--namespaces", "2", "--repos", "3", "--tags", "4", "--seed", "11"]
    args += ["--token", "tok-a", "--token", "tok-b", "--targets-out", str(targets)]
    args += ["--scripts", str(scripts)]
    with sandbox_process(*args) as (process, url):
        lines = targets.read_text().splitlines()
        assert len(lines) == 2 * 3 * 4
        namespace, rest = lines[5].split("/", 1)
        repository, tag = rest.rsplit(":", 1)
        path = f"/v2/manage/namespaces/{namespace}/repos/{repository.replace('/', '$')}/tags/{tag}"
        status, body = fetch(url + path, "tok-b")
        assert status == 200
        assert json.loads(body)["tag"] == tag
        assert fetch(url + path, "sandbox-token")[0] == 401
        assert fetch(url + "/v2/manage/namespaces/x/repos/y/tags/z", "tok-a")[0] == 503
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0


def test_ak_without_sk_is_a_usage_error() -> None:
    """--ak without --sk stops at once with exit status 2 and says why."""
    result = CliRunner().invoke(sandbox_command, ["--ak", "AK"])
    assert result.exit_code == 2
    assert "--ak and --sk" in result.output


def test_a_bad_script_is_a_usage_error(tmp_path: Path) -> None:
    """A scripts file with an unknown action is refused before the server starts."""
    scripts = tmp_path / "scripts.json"
    scripts.write_text(json.dumps({"a/b:c": ["explode"]}))
    result = CliRunner().invoke(sandbox_command, ["--scripts", str(scripts)])
    assert result.exit_code == 2
    assert "explode" in result.output
    scripts.write_text("[1, 2]")
    result = CliRunner().invoke(sandbox_command, ["--scripts", str(scripts)])
    assert result.exit_code == 2
