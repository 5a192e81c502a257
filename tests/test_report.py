"""``swr-crawler report``: the summary's figures, the terminal text, the HTML page in Chromium."""

from __future__ import annotations

import hashlib
import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from crawler.cli import cli
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA
from crawler.report.html import render_html
from crawler.report.model import Summary
from crawler.report.short import load_short_summary
from crawler.report.summary import (
    ERROR_COLUMNS,
    NO_DATE,
    TAG_COLUMNS,
    load_summary,
    summarize,
)
from crawler.report.text import full_lines, human_bytes, short_lines
from crawler.sandbox.server import SandboxConfig, running_sandbox
from tests.browser import find_chromium, load_page
from tests.e2e_helpers import TOKEN, crawl, write_part

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
MAX = 2**63 - 1


def tag(ref: str, **values: Any) -> dict[str, Any]:
    namespace, rest = ref.split("/", 1)
    repository, tag_name = rest.rsplit(":", 1)
    row: dict[str, Any] = {
        "namespace": namespace,
        "repository": repository,
        "tag": tag_name,
        "digest": "sha256:" + hashlib.sha256(ref.encode()).hexdigest(),
        "schema": 2,
        "tag_type": 0,
        "size": 100,
        "created": AS_OF - timedelta(days=10),
        "manifest_media_type": "application/vnd.oci.image.manifest.v1+json",
        "platforms": None,
        "fetched_at": AS_OF,
        "attempts": 1,
    }
    row.update(values)
    return row


def tables(
    tags: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None
) -> tuple[pa.Table, pa.Table]:
    tag_schema = pa.schema([TAGS_SCHEMA.field(c) for c in TAG_COLUMNS])
    error_schema = pa.schema([ERRORS_SCHEMA.field(c) for c in ERROR_COLUMNS])
    return pa.Table.from_pylist(tags, tag_schema), pa.Table.from_pylist(errors or [], error_schema)


def test_sizes_add_up_exactly_even_at_the_int64_limit() -> None:
    """Two tags of 2^63-1 bytes add up to 2^64-2 exactly, per namespace and in total."""
    summary = summarize(
        *tables([tag("a/x:1", size=MAX), tag("a/x:2", size=MAX), tag("b/y:1", size=5)]),
        as_of=AS_OF,
    )
    assert summary.bytes == 2 * MAX + 5
    assert [(n.namespace, n.tags, n.repositories, n.bytes) for n in summary.namespaces] == [
        ("a", 2, 1, 2 * MAX),
        ("b", 1, 1, 5),
    ]
    assert "EiB" in human_bytes(summary.bytes)


def test_tag_ages_fall_into_their_buckets() -> None:
    """Ages are measured from as_of; a missing date and a date in the future are counted too."""
    days = [-3, 10, 45, 100, 200, 400, 800, 1200, 5000]
    rows = [tag(f"a/x:{d}", created=AS_OF - timedelta(days=d)) for d in days]
    rows.append(tag("a/x:none", created=None))
    summary = summarize(*tables(rows), as_of=AS_OF)
    assert summary.ages == {
        "< 30 d": 2,
        "30-90 d": 1,
        "90-180 d": 1,
        "180 d-1 y": 1,
        "1-2 y": 1,
        "2-3 y": 1,
        "> 3 y": 2,
        NO_DATE: 1,
    }


def test_images_shared_digests_oldest_and_largest() -> None:
    """Tags pointing at one digest are one image; the tables are ordered and name the tags."""
    same = "sha256:" + "a" * 64
    rows = [
        tag("a/app:latest", digest=same, size=300, created=AS_OF - timedelta(days=50)),
        tag("a/app:v1", digest=same, size=300, created=AS_OF - timedelta(days=50)),
        tag("a/app:v0", size=900, created=AS_OF - timedelta(days=900)),
        tag("b/db:1", size=50, created=None),
    ]
    summary = summarize(*tables(rows), as_of=AS_OF)
    assert (summary.tags, summary.images, summary.shared_total) == (4, 3, 1)
    assert summary.shared[0].digest == same
    assert summary.shared[0].references == ("a/app:latest", "a/app:v1")
    assert [i.reference for i in summary.largest] == ["a/app:v0", "a/app:latest", "b/db:1"]
    assert [i.reference for i in summary.oldest] == ["a/app:v0", "a/app:latest"]  # no date: out
    assert summary.largest[1].tags == 2


def test_manifest_lists_platforms_schemas_and_errors() -> None:
    """Platforms come from manifest lists only; errors are counted by kind and by status."""
    rows = [
        tag("a/x:list", tag_type=1, platforms=["linux/amd64", "linux/arm64/v8"]),
        tag("a/x:list2", tag_type=1, platforms=["linux/amd64"]),
        tag("a/x:old", schema=1, manifest_media_type=None),
    ]
    errors = [
        {"error_kind": "not_found", "http_status": 404},
        {"error_kind": "not_found", "http_status": 404},
        {"error_kind": "invalid_target", "http_status": None},
    ]
    summary = summarize(*tables(rows, errors), as_of=AS_OF)
    assert summary.manifest_lists == 2
    assert summary.platforms == {"linux/amd64": 2, "linux/arm64/v8": 1}
    assert summary.by_schema == {"schema 1 manifest": 1, "schema 2 manifest list": 2}
    assert summary.error_kinds == {"not_found": 2, "invalid_target": 1}
    assert summary.error_statuses == {"404": 2, "none": 1}
    assert any("not_found: 2" in line for line in short_lines(summary))


def test_an_empty_output_summarises_to_zeros() -> None:
    """No rows at all: every figure is zero and every renderer still works."""
    summary = summarize(*tables([]), as_of=AS_OF)
    assert (summary.tags, summary.bytes, summary.images, summary.errors) == (0, 0, 0, 0)
    assert full_lines(summary)[2:4] == ["Namespaces (by bytes)", "  (none)"]
    assert render_html(summary).count("<svg") == 3


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 2**30, "5.0 GiB"),
        (2**80, "1.0 YiB"),
        (2**90, "1024.0 YiB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    """Sizes print in binary units, exact below 1 KiB, however large."""
    assert human_bytes(n) == text


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real crawl's output: the sandbox over loopback, some tags that fail on purpose."""
    import anyio

    out = tmp_path_factory.mktemp("report") / "out"

    async def run() -> None:
        config = SandboxConfig(
            seed=4, namespaces=3, repos_per_namespace=4, tags_per_repo=5, tokens=frozenset({TOKEN})
        )
        async with running_sandbox(config) as sb:
            lines = [f"{ns}/{repo}:{t}" for ns, repo, t in sb.catalogue.targets()]
            await crawl(sb.url, [*lines, "ghost/none:v1", "BAD/x:1"], out)

    anyio.run(run)
    return out


def test_report_command_matches_the_parquet_files(crawled: Path) -> None:
    """The terminal report's per-namespace tag counts equal DuckDB's reading of the files."""
    result = CliRunner().invoke(cli, ["report", str(crawled)])
    assert result.exit_code == 0, result.output
    expected = duckdb.sql(
        f"SELECT namespace, count(*) FROM read_parquet('{crawled}/tags/*.parquet') GROUP BY 1"
    ).fetchall()
    assert len(expected) == 3
    lines = result.output.splitlines()
    for namespace, count in expected:
        line = next(line for line in lines if line.strip().startswith(namespace + " "))
        assert line.split()[1] == str(count)
    assert any(line.split()[:2] == ["not_found", "1"] for line in lines)
    assert any(line.split()[:2] == ["invalid_target", "1"] for line in lines)


#: The fields the end of a crawl prints, which :func:`load_short_summary` fills.
SHORT_FIELDS = (
    "tags",
    "images",
    "bytes",
    "errors",
    "namespaces",
    "by_schema",
    "manifest_lists",
    "error_kinds",
)


def short_fields(summary: Summary) -> dict[str, Any]:
    return {name: getattr(summary, name) for name in SHORT_FIELDS}


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 65_536])
def test_the_short_summary_read_in_batches_equals_the_whole_tables(
    tmp_path: Path, batch_rows: int
) -> None:
    """Two files, digests shared within and across them, a namespace and a repository in
    both, null digests, sizes at the int64 limit: read a few rows at a time, the end of a
    crawl's figures are the ones the whole-table summary gives."""
    shared = {"digest": "sha256:" + "ab" * 32}
    first = [
        tag("a/x:1", **shared, size=MAX),
        tag("a/x:2", **shared, size=MAX),
        tag("a/y:1", tag_type=1, schema=2),
        tag("b/z:1", digest=None, schema=1),
    ]
    second = [
        tag("a/x:3", **shared),
        tag("a/w:1", size=None),
        tag("c/v:1", tag_type=1),
    ]
    failed = {"attempts": 1, "failed_at": AS_OF}
    errors = [
        {"error_kind": "not_found", "http_status": 404, **failed},
        {"error_kind": "timeout", **failed},
    ]
    write_part(tmp_path, "tags", 1, first)
    write_part(tmp_path, "tags", 2, second)
    write_part(tmp_path, "errors", 1, errors)
    whole = summarize(*tables(first + second, errors), as_of=AS_OF)
    short = load_short_summary(tmp_path, batch_rows=batch_rows)
    assert short_fields(short) == short_fields(whole)
    assert (short.images, short.tags, short.namespaces[0].repositories) == (4, 7, 3)
    assert short_lines(short) == short_lines(whole)


def test_report_refuses_a_directory_that_is_no_output(tmp_path: Path) -> None:
    """A folder without tags/ or errors/ is a one-line error, exit 2."""
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "not an output" in result.output


def test_report_html_is_one_file_with_three_charts(crawled: Path, tmp_path: Path) -> None:
    """--html writes one page: inline SVG charts and CSS, no external reference."""
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(crawled), "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count("<svg") == 3
    for chart in ("Bytes per namespace", "Tag age (by created)", "Error rows by kind"):
        assert chart in html
    assert "<script src" not in html
    assert "<link" not in html
    assert 'href="http' not in html


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.slow
def test_html_report_in_headless_chromium(crawled: Path, tmp_path: Path) -> None:
    """Real Chromium, offline: the page loads nothing but itself, logs no console error,
    draws three charts with a size, and screenshots to a tall PNG."""
    chromium = find_chromium()
    if chromium is None:
        pytest.fail("no chromium: `make test` installs it (apt-get install -y chromium)")
    page = tmp_path / "report.html"
    page.write_text(render_html(load_summary(crawled)))
    load = load_page(
        chromium,
        page,
        tmp_path / "profile",
        evaluate="[...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width)",
    )
    assert load.requests == [page.resolve().as_uri()]
    assert [entry for entry in load.console if entry[0] in {"error", "exception", "warning"}] == []
    assert len(load.evaluated) == 3
    assert all(width > 300 for width in load.evaluated)
    width, height = _png_size(load.screenshot)
    assert width >= 1000
    assert height > 1500
    (tmp_path / "report.png").write_bytes(load.screenshot)
    assert os.path.getsize(tmp_path / "report.png") > 20_000


def test_extreme_sizes_from_a_server_add_up_exactly(tmp_path: Path) -> None:
    """A sandbox reporting sizes of 0 and 2^63-1: crawled into Parquet and summed by the
    report to exactly the catalogue's total."""
    import anyio

    out = tmp_path / "out"
    config = SandboxConfig(
        seed=1,
        namespaces=2,
        repos_per_namespace=5,
        tags_per_repo=10,
        extreme_sizes=True,
        tokens=frozenset({TOKEN}),
    )

    async def run() -> int:
        async with running_sandbox(config) as sb:
            targets = list(sb.catalogue.targets())
            await crawl(sb.url, [f"{ns}/{repo}:{t}" for ns, repo, t in targets], out)
            return sum((sb.catalogue.get(*t) or {})["size"] for t in targets)

    expected = anyio.run(run)
    assert expected > 2**63  # at least one extreme size is in there
    assert load_summary(out).bytes == expected
    assert load_short_summary(out, batch_rows=7).bytes == expected
