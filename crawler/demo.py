"""``swr-crawler demo``: the main job end to end against a local sandbox.

Starts the sandbox SWR server in its own process on a free loopback port,
writes a few thousand targets (with some that fail on purpose: unknown tags,
invalid lines, duplicates, a registry-host prefix), crawls them with the real
CLI code path and prints the summary and where the Parquet files are.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from pathlib import Path

import anyio
import click

from crawler.config import build_config
from crawler.logs import configure_logging
from crawler.sandbox.process import sandbox_process

DEMO_TOKEN = "sandbox-token"  # noqa: S105 - the sandbox's own demo token, not a secret


def write_demo_targets(catalogue_file: Path, out: Path, limit: int) -> int:
    """The demo's targets: catalogue tags plus lines that fail on purpose."""
    lines = catalogue_file.read_text().splitlines()[:limit]
    extras = [
        "# a few that fail on purpose",
        "ghost-ns/nothing/here:v0",  # not found
        f"{lines[0].split(':')[0]}:no-such-tag",  # not found
        "Bad_Namespace/repo:v1",  # invalid name
        "team/repo-without-tag",  # invalid: no tag
        lines[0],  # duplicate
        f"swr.cn-north-4.myhuaweicloud.com/{lines[1]}",  # registry host dropped -> duplicate
    ]
    out.write_text("\n".join([*lines, *extras]) + "\n")
    return len(lines) + len(extras)


@click.command()
@click.option("--out", default="out/demo", show_default=True, help="Output directory.")
@click.option("--targets", "count", default=3000, show_default=True, help="Catalogue tags.")
@click.option("--concurrency", default=32, show_default=True)
@click.option("--rate", default=300.0, show_default=True, help="Client rate limit, req/s.")
@click.option("--no-progress", is_flag=True)
def demo_command(out: str, count: int, concurrency: int, rate: float, no_progress: bool) -> None:
    """Start a sandbox SWR, crawl a few thousand targets, show the result."""
    from crawler.run.runner import run_crawl

    out_dir = Path(out)
    for stale in ("tags", "errors", "run.json", "targets.txt", "catalogue.txt"):
        path = out_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    catalogue = out_dir / "catalogue.txt"
    targets = out_dir / "targets.txt"
    sandbox_args = [
        *("--seed", "7", "--namespaces", "4", "--repos", "30", "--tags", "30"),
        *("--latency", "0.01", "--error-rate", "0.02", "--truncated-rate", "0.005"),
        *("--reset-rate", "0.005", "--rate-limit", str(rate * 0.9), "--rate-burst", "30"),
        *("--token", DEMO_TOKEN, "--targets-out", str(catalogue)),
    ]
    with sandbox_process(*sandbox_args) as (url, _):
        written = write_demo_targets(catalogue, targets, count)
        click.echo(f"sandbox SWR at {url}; {written} target lines in {targets}")
        config = build_config(
            {
                "targets": str(targets),
                "out": str(out_dir),
                "endpoint": url,
                "concurrency": concurrency,
                "rate": rate,
                "burst": 10,
                "backoff_initial": 0.2,
                "backoff_max": 5.0,
                "progress": not no_progress,
            },
            environ={},
        )
        # Retries are expected here (the sandbox injects faults): show only warnings.
        configure_logging("auto", level=logging.WARNING)
        result = anyio.run(lambda: run_crawl(config, environ={"SWR_AUTH_TOKEN": DEMO_TOKEN}))
    for line in result.report.summary_lines():
        click.echo(line)
    click.echo(f"tags:   {out_dir / 'tags'}/*.parquet")
    click.echo(f"errors: {out_dir / 'errors'}/*.parquet")
    click.echo(f"report: {out_dir / 'run.json'}")
    _show_sample(out_dir)


def _show_sample(out_dir: Path) -> None:
    """What the crawl found, read back from the Parquet files."""
    import pyarrow.dataset as ds

    tags = ds.dataset(out_dir / "tags", format="parquet").to_table(
        columns=["manifest_media_type", "size"]
    )
    by_kind = tags.group_by("manifest_media_type").aggregate([("size", "count")])
    click.echo("tags by manifest media type:")
    for row in sorted(by_kind.to_pylist(), key=lambda r: -int(r["size_count"])):
        media_type = row["manifest_media_type"] or "(no mediaType: schema 1, or OCI without it)"
        click.echo(f"  {row['size_count']:>6}  {media_type}")
    template = (
        "SELECT error_kind, http_status, count(*) AS n FROM read_parquet('{}') "
        "GROUP BY ALL ORDER BY n DESC"
    )
    sql = template.format(out_dir / "errors" / "*.parquet")
    # The duckdb Python package comes with the dev extra; its CLI may not be installed.
    code = f"import duckdb; duckdb.sql({sql!r}).show()"
    click.echo(f"query it:  {shlex.join([sys.executable, '-c', code])}")
