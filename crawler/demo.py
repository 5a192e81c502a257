"""``swr-crawler demo``: the main job end to end against a local sandbox.

Starts the sandbox SWR server in its own process on a free loopback port,
writes a few thousand targets (with some that fail on purpose: unknown tags,
invalid lines, duplicates, a registry-host prefix), crawls them with the real
CLI code path and ends with the report of what it found (``swr-crawler
report``, also written as ``report.html``) and where the Parquet files are.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
from pathlib import Path

import anyio
import click

from crawler.cli import fail_usage
from crawler.config import build_config
from crawler.errors import ConfigError
from crawler.logs import configure_logging
from crawler.sandbox.process import sandbox_process

EXAMPLE = """
\b
Example:
  swr-crawler demo --out out/demo
  swr-crawler report out/demo --html out/demo/report.html
"""

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


#: Written first into a demo's --out: what proves that a later demo may replace it.
DEMO_MARK = ".swr-crawler-demo"
#: Everything a demo writes into its --out (and so the only names it replaces).
DEMO_NAMES = frozenset(
    {
        DEMO_MARK,
        ".lock",
        "tags",
        "errors",
        "run.json",
        "targets.txt",
        "catalogue.txt",
        "report.html",
    }
)


def check_demo_out(out_dir: Path) -> None:
    """Refuse an --out that holds anything a demo did not write (a real run, say).

    An absent or empty folder is fine; so is one an earlier demo wrote (its mark
    is there and nothing else is).
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"demo --out {out_dir}: is not a directory")
    present = {p.name for p in out_dir.iterdir()}
    if not present:
        return
    foreign = sorted(present - DEMO_NAMES)
    if DEMO_MARK not in present:
        foreign = sorted(present)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ConfigError(
            f"demo --out {out_dir}: holds files the demo did not write ({shown}); "
            "it replaces only an earlier demo's output: give another --out or an empty folder"
        )


@click.command(epilog=EXAMPLE)
@click.option("--out", default="out/demo", show_default=True, help="Output directory.")
@click.option("--targets", "count", default=3000, show_default=True, help="Catalogue tags.")
@click.option("--concurrency", default=32, show_default=True, help="Requests in flight.")
@click.option("--rate", default=300.0, show_default=True, help="Client rate limit, req/s.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def demo_command(out: str, count: int, concurrency: int, rate: float, no_progress: bool) -> None:
    """Start a sandbox SWR, crawl a few thousand targets, show the report.

    The sandbox (a local SWR look-alike on loopback) injects faults on purpose, so
    the run shows retries and a few error rows. --out must be empty, absent, or an
    earlier demo's output: anything else is refused, never deleted.
    """
    from crawler.run.runner import run_crawl

    out_dir = Path(out)
    try:
        check_demo_out(out_dir)
    except ConfigError as exc:
        fail_usage(str(exc))
    for stale in DEMO_NAMES:
        path = out_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARK).write_text(
        "written by swr-crawler demo; the demo may replace this folder\n"
    )
    catalogue = out_dir / "catalogue.txt"
    targets = out_dir / "targets.txt"
    sandbox_args = [
        # Repositories of mixed sizes, as in a real registry: most hold a few tags,
        # some hold dozens.
        *("--seed", "7", "--namespaces", "5", "--repos", "36"),
        *("--tag-counts", "2,40,8,1,15,60,5,3,12,30"),
        *("--latency", "0.01", "--error-rate", "0.02", "--truncated-rate", "0.005"),
        *("--reset-rate", "0.005"),
        # A gateway limit a little below --rate, so that the run meets a few 429s.
        *(("--rate-limit", str(rate * 0.9), "--rate-burst", "30") if rate > 0 else ()),
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
    _show_report(out_dir)


def _show_report(out_dir: Path) -> None:
    """What the crawl found, read back from the Parquet files: the report, and where it all is."""
    from crawler.output.storage import write_atomic
    from crawler.report.html import render_html
    from crawler.report.summary import load_summary
    from crawler.report.text import full_lines

    summary = load_summary(out_dir)
    click.echo("")
    for line in full_lines(summary):
        click.echo(line)
    page = out_dir / "report.html"
    write_atomic(page, render_html(summary, title="SWR inventory (demo sandbox)").encode())
    click.echo("")
    click.echo(f"tags:     {out_dir / 'tags'}/*.parquet")
    click.echo(f"errors:   {out_dir / 'errors'}/*.parquet")
    click.echo(f"run file: {out_dir / 'run.json'}")
    click.echo(f"report:   {page} (open it in a browser; it loads nothing from the network)")
    template = (
        "SELECT namespace, count(*) AS tags, sum(size) AS bytes FROM read_parquet('{}') "
        "GROUP BY ALL ORDER BY bytes DESC"
    )
    sql = template.format(out_dir / "tags" / "*.parquet")
    # The duckdb Python package comes with the dev extra; its CLI may not be installed.
    code = f"import duckdb; duckdb.sql({sql!r}).show()"
    click.echo(f"query it: {shlex.join([sys.executable, '-c', code])}")
