"""``swr-crawler report OUT``: what an output holds, on the terminal and as an HTML page."""

from __future__ import annotations

from pathlib import Path

import click

from crawler.cli import fail_usage

EXAMPLE = """
\b
Example:
  swr-crawler report out/demo --html out/demo/report.html
  # then open out/demo/report.html in a browser (it loads nothing from the network)
"""


@click.command(epilog=EXAMPLE)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as one self-contained HTML page (inline CSS and SVG charts).",
)
def report_command(out: Path, html_file: Path | None) -> None:
    """Summarise an output: tags and bytes per namespace, schemas, manifest lists and
    their platforms, the oldest and largest images, shared digests, errors by kind.

    OUT is a crawl's --out directory, or a dataset snapshot with the same tags/ and
    errors/ folders.
    """
    import pyarrow as pa

    from crawler.output.storage import write_atomic
    from crawler.report.html import render_html
    from crawler.report.summary import load_summary
    from crawler.report.text import full_lines

    if not (out / "tags").is_dir() and not (out / "errors").is_dir():
        fail_usage(f"{out}: not an output (no tags/ or errors/ folder in it)")
    try:
        summary = load_summary(out)
    except (OSError, pa.ArrowException) as exc:
        fail_usage(f"{out}: cannot read the Parquet files ({str(exc).splitlines()[0]})")
    for line in full_lines(summary):
        click.echo(line)
    if html_file is not None:
        try:
            write_atomic(html_file, render_html(summary).encode())
        except OSError as exc:
            fail_usage(f"html {html_file}: {exc.strerror or exc}")
        click.echo(f"\nHTML report: {html_file}")
