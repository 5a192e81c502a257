"""The run's promises: complete means complete, pipes are read by the crawl, nothing silent."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from crawler.config import CrawlConfig, build_config
from crawler.logs import configure_logging
from crawler.output import sink
from crawler.output.checkpoint import read_checkpoint
from crawler.output.compat import ReadStopped, targets_fingerprint
from crawler.output.layout import Layout
from crawler.run.runner import run_crawl
from crawler.sandbox.server import running_sandbox
from crawler.targets import InvalidTarget, Target, parse_reference
from tests.e2e_helpers import TOKEN, catalogue_keys, crawl, sandbox_config


def _config(url: str, out: Path, **settings: object) -> CrawlConfig:
    flags = {"out": str(out), "endpoint": url, "rate": 0, "progress": False, "seed": 1}
    return build_config({**flags, **settings}, environ={})


@pytest.mark.anyio
async def test_targets_from_a_pipe_are_crawled_not_spent_on_a_fingerprint(tmp_path: Path) -> None:
    """A pipe given as --targets (like <(...) or /dev/stdin) is read by the crawl itself."""
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)[:5]
        read_end, write_end = os.pipe()
        data = ("\n".join(keys) + "\n").encode()
        writer = threading.Thread(target=lambda: (os.write(write_end, data), os.close(write_end)))
        writer.start()
        config = _config(sb.url, tmp_path / "out", targets=f"/dev/fd/{read_end}")
        await run_crawl(config, environ={"SWR_AUTH_TOKEN": TOKEN}, handle_signals=False)
        writer.join()
        os.close(read_end)
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["counts"]["ok"] == len(keys)
    assert report["complete"] is True
    assert report["targets_sha256"] is None  # a pipe can be read once: no fingerprint


def _failing_items(keys: list[str]) -> Iterator[Target | InvalidTarget]:
    for key in keys:
        parsed = parse_reference(key)
        yield parsed
    raise RuntimeError("the input broke half-way")


@pytest.mark.anyio
async def test_an_unexpected_exception_ends_the_run_incomplete_with_its_reason(
    tmp_path: Path,
) -> None:
    """An error nobody expected (here, in the input) is complete: false, its reason, exit 1."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)[:3]
        config = _config(sb.url, out)
        result = await run_crawl(
            config,
            environ={"SWR_AUTH_TOKEN": TOKEN},
            items=_failing_items(keys),
            handle_signals=False,
        )
    report = json.loads((out / "run.json").read_text())
    assert result.exit_code == 1
    assert (report["complete"], report["exit_code"]) == (False, 1)
    assert "RuntimeError: the input broke half-way" in report["stop_reason"]
    assert report["ended_at"] is not None


@pytest.mark.anyio
async def test_an_empty_input_or_an_all_invalid_one_is_warned_about(tmp_path: Path) -> None:
    """No target at all, or only invalid ones: the summary says so (and a warning is logged)."""
    async with running_sandbox(sandbox_config()) as sb:
        with structlog.testing.capture_logs() as logs:
            empty = await crawl(sb.url, ["# nothing here", ""], tmp_path / "empty")
            invalid = await crawl(sb.url, ["Bad/x:1", "no-tag/x"], tmp_path / "invalid")
    assert any("holds no target" in line for line in empty.result.report.summary_lines())
    assert any(
        "every target (2) is invalid" in line for line in invalid.result.report.summary_lines()
    )
    assert [e["event"] for e in logs if e["log_level"] == "warning"].count("crawl.warning") == 2


def test_console_logs_escape_control_characters() -> None:
    """ESC, BEL and CR from an input line reach the console as \\xNN, never raw."""
    stream = io.StringIO()
    configure_logging("console", stream=stream)
    try:
        structlog.get_logger("crawler").info(
            "crawl.target_invalid", source="\x1b[31mred\x07\rover", line=3
        )
    finally:
        structlog.reset_defaults()
    text = stream.getvalue()
    assert not {"\x1b", "\x07", "\r"} & set(text)
    assert "\\x1b[31mred\\x07\\x0dover" in text


def test_a_console_traceback_prints_no_local_variable() -> None:
    """An exception logged on the console shows its traceback but no frame's locals (where a
    credential may be)."""
    stream = io.StringIO()
    configure_logging("console", stream=stream)

    def sign() -> None:
        secret_key = "skLOCAL/never-printed+1"
        raise RuntimeError(f"signing failed ({len(secret_key)} chars)")

    try:
        try:
            sign()
        except RuntimeError as exc:
            structlog.get_logger("crawler").error("crawl.crashed", exc_info=exc)
    finally:
        structlog.reset_defaults()
    text = stream.getvalue()
    assert "RuntimeError: signing failed (23 chars)" in text
    assert "skLOCAL/never-printed+1" not in text


@pytest.mark.anyio
async def test_long_set_up_reads_end_soon_after_a_stop(tmp_path: Path) -> None:
    """The resume read and the targets fingerprint give up once the run stops, so a signal
    during set-up leaves no thread reading a large output or file to its end."""
    out = tmp_path / "out"
    async with running_sandbox(sandbox_config()) as sb:
        await crawl(sb.url, catalogue_keys(sb.catalogue)[:3], out)
    stop = threading.Event()
    stop.set()
    layout = Layout(out)
    with pytest.raises(ReadStopped):
        read_checkpoint(layout, stop)
    with pytest.raises(ReadStopped):
        targets_fingerprint(str(tmp_path / "out-targets.txt"), stop)
    assert len(read_checkpoint(layout, threading.Event()).recorded) == 3


@pytest.mark.anyio
async def test_a_writer_failure_that_is_not_an_oserror_ends_the_run_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception from Parquet encoding (not a full disk) is complete: false, its reason
    recorded, exit 1, and no visible half-written file."""

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array")

    monkeypatch.setattr(sink.Dataset, "write", broken)
    out = tmp_path / "out"
    async with running_sandbox(sandbox_config()) as sb:
        outcome = await crawl(sb.url, catalogue_keys(sb.catalogue)[:5], out)
    report = json.loads((out / "run.json").read_text())
    assert outcome.result.exit_code == 1
    assert (report["complete"], report["exit_code"]) == (False, 1)
    assert "TypeError: Cannot convert" in report["stop_reason"]
    assert not list(out.glob("*/*.parquet"))
