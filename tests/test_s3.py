"""Object storage: datasets on a real S3-compatible server (moto's, on loopback), never a mock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from crawler.cli import cli
from crawler.config import build_config
from crawler.errors import ConfigError
from crawler.output.lock import OutputLocked
from crawler.output.objectstore import open_location
from crawler.run.runner import run_crawl
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import SandboxConfig, running_sandbox, sandbox_in_thread
from tests.e2e_helpers import (
    CRAWLER,
    TOKEN,
    crawl_snapshot,
    row_keys,
    sandbox_config,
    write_targets,
)
from tests.s3server import ACCESS_KEY, SECRET_KEY, S3Server, duckdb_on

pytestmark = pytest.mark.slow  # the S3 server is a subprocess

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"seed": 31, "namespaces": 2, "repos_per_namespace": 3, "tags_per_repo": 6}


def objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    """Every object in ``bucket``, by key, with its bytes."""
    fs, _ = open_location(f"s3://{bucket}", server.environ())
    infos = fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
    out = {}
    for info in infos:
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as stream:
                out[info.path.removeprefix(f"{bucket}/")] = stream.read()
    return out


def assert_no_secret(*blobs: bytes) -> None:
    for blob in blobs:
        assert SECRET_KEY.encode() not in blob
        assert ACCESS_KEY.encode() not in blob


async def crawl_s3_day(
    server: S3Server, dataset: str, spool: Path, day: str, generation: int
) -> tuple[Any, dict[str, str]]:
    """Crawl catalogue ``generation`` as the ``day`` snapshot of ``dataset`` on ``server``."""
    return await crawl_snapshot(
        SMALL,
        dataset,
        day,
        generation,
        targets_dir=spool.parent,
        environ=server.environ(),
        spool=str(spool),
    )


@pytest.mark.anyio
async def test_dataset_on_s3_reads_back_in_pyarrow_and_duckdb(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """Two days crawled to s3:// read back as one table (pyarrow, DuckDB httpfs); diff on s3."""
    bucket = s3_server.create_bucket()
    dataset = f"s3://{bucket}/swr"
    spool = tmp_path / "spool"
    first, day1 = await crawl_s3_day(s3_server, dataset, spool, "2026-11-01", 0)
    second, day2 = await crawl_s3_day(s3_server, dataset, spool, "2026-11-02", 1)
    assert first is not None
    assert first.report.complete
    assert second is not None
    assert second.report.complete
    expected = {("2026-11-01", k, d) for k, d in day1.items()}
    expected |= {("2026-11-02", k, d) for k, d in day2.items()}

    fs, path = open_location(f"{dataset}/tags", s3_server.environ())
    table = ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive").to_table()
    got = {
        (str(r["snapshot_date"]), f"{r['namespace']}/{r['repository']}:{r['tag']}", r["digest"])
        for r in table.to_pylist()
    }
    assert got == expected
    assert table.num_rows == len(expected)

    con = duckdb_on(s3_server)
    rows = con.execute(
        "SELECT CAST(snapshot_date AS VARCHAR), namespace || '/' || repository || ':' || tag, "
        "digest FROM read_parquet(?, hive_partitioning = true)",
        [f"{dataset}/tags/**/*.parquet"],
    ).fetchall()
    assert set(rows) == expected
    assert len(rows) == len(expected)

    stored = objects(s3_server, bucket)
    assert not [k for k in stored if "_staging" in k]  # staged locally, never on the store
    assert_no_secret(*stored.values())

    result = CliRunner(env=s3_server.environ()).invoke(
        cli, ["diff", f"{dataset}@2026-11-01", f"{dataset}@2026-11-02", "--fail-on", "repointed"]
    )
    assert result.exit_code == 1, result.output
    assert any(line.startswith("repointed") for line in result.stdout.splitlines())


@pytest.mark.parametrize("form", ["dataset", "out"])
def test_sigkill_mid_run_then_resume_on_s3(s3_server: S3Server, tmp_path: Path, form: str) -> None:
    """A crawler SIGKILLed mid-run leaves no partial object; --resume records every target once."""
    bucket = s3_server.create_bucket()
    location = f"s3://{bucket}/swr"
    if form == "dataset":
        where = ["--dataset", location, "--spool", str(tmp_path / "spool")]
        where += ["--snapshot-date", "2026-11-05"]
        prefixes: tuple[str, ...] = ("swr/tags/snapshot_date=2026-11-05/", "swr/errors/")
    else:
        where = ["--out", location]
        prefixes = ("swr/tags/", "swr/errors/")
    catalogue = {"seed": 41, "namespaces": 2, "repos_per_namespace": 5, "tags_per_repo": 20}
    with sandbox_in_thread(sandbox_config(**catalogue, faults=FaultConfig(latency=0.02))) as sb:
        keys = write_targets(sb.catalogue, tmp_path / "targets.txt")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SWR_", "AWS_"))}
        env |= {"SWR_AUTH_TOKEN": TOKEN, **s3_server.environ()}
        command = [
            *CRAWLER,
            *("crawl", "--targets", str(tmp_path / "targets.txt"), *where),
            *("--endpoint", sb.url, "--rate", "100", "--concurrency", "4", "--resume"),
            *("--mode", "detail"),  # one request a target, so there is a middle to kill in
            *("--commit-seconds", "0.2", "--no-progress", "--log-format", "json"),
        ]
        log = tmp_path / "crawl.log"
        with log.open("ab") as err:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=err)
        try:
            deadline = time.monotonic() + 180  # interpreter start-up on a loaded machine
            while sb.stats.tag_requests < len(keys) // 3:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the crawl did not get going"
                time.sleep(0.01)  # polling an observable condition
            proc.kill()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert sb.stats.tag_requests < len(keys)
        fs, _ = open_location(location, s3_server.environ())
        after_kill = objects(s3_server, bucket)
        if form == "dataset":
            assert after_kill == {}  # nothing is uploaded before the run is complete
        for k in after_kill:
            if k.endswith(".parquet"):  # every visible part is whole
                assert pq.read_metadata(f"{bucket}/{k}", filesystem=fs).num_rows > 0

        with log.open("ab") as err:
            done = subprocess.run(command, cwd=ROOT, env=env, stderr=err, timeout=300)
        assert done.returncode == 0, log.read_text()

    stored = objects(s3_server, bucket)
    parts = [k for k in stored if k.endswith(".parquet")]
    assert parts
    assert all(k.startswith(prefixes) for k in parts)
    assert not [k for k in stored if k.endswith(".tmp")]
    found: list[str] = []
    for k in parts:
        found += row_keys(pq.read_table(f"{bucket}/{k}", filesystem=fs))
    assert sorted(found) == sorted(keys)  # every target exactly once
    assert sb.stats.tag_requests < 2 * len(keys)  # the resume did not start over
    if form == "dataset":
        assert len([k for k in stored if k.startswith("swr/runs/snapshot_date=2026-11-05/")]) == 1
    else:
        assert json.loads(stored["swr/run.json"])["complete"] is True
        assert not [k for k in stored if "lock" in k]  # the lease is gone after a clean end
    spooled = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "spool" in str(p)]
    assert_no_secret(log.read_bytes(), *stored.values(), *spooled)


@pytest.mark.anyio
async def test_out_on_s3_reads_back_and_is_locked_by_a_lease(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """--out s3:// reads back in DuckDB; a live lease refuses a second run; a new run is refused."""
    bucket = s3_server.create_bucket()
    out = f"s3://{bucket}/run"
    env = {"SWR_AUTH_TOKEN": TOKEN, **s3_server.environ()}
    config = SandboxConfig(**SMALL, tokens=frozenset({TOKEN}))
    async with running_sandbox(config) as sb:
        path = tmp_path / "targets.txt"
        keys = write_targets(sb.catalogue, path)
        flags = {"targets": str(path), "out": out, "endpoint": sb.url, "rate": 0}
        flags |= {"progress": False, "seed": 1}
        result = await run_crawl(build_config(flags, environ={}), environ=env, handle_signals=False)
        assert result.exit_code == 0

        # The lease of a live process (this test's parent) refuses a second run (exit 2).
        fs = open_location(out, env)[0]
        holder = {"pid": os.getppid(), "host": socket.gethostname(), "expires": time.time() + 60}
        with fs.open_output_stream(f"{bucket}/run/.lock") as stream:
            stream.write(json.dumps(holder).encode())
        with pytest.raises(OutputLocked, match="another crawl is writing here"):
            await run_crawl(
                build_config({**flags, "resume": True}, environ={}),
                environ=env,
                handle_signals=False,
            )
        fs.delete_file(f"{bucket}/run/.lock")
        with pytest.raises(ConfigError, match="already holds"):
            await run_crawl(build_config(flags, environ={}), environ=env, handle_signals=False)

    con = duckdb_on(s3_server)
    rows = con.execute(
        "SELECT namespace || '/' || repository || ':' || tag FROM read_parquet(?)",
        [f"{out}/tags/*.parquet"],
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(keys)
    assert_no_secret(*objects(s3_server, bucket).values())
