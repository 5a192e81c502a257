"""End to end over real loopback sockets: the crawl pipeline against the sandbox SWR."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from crawler.output.schema import ERRORS_SCHEMA, META_RUN_ID, TAGS_SCHEMA
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import running_sandbox
from tests.e2e_helpers import TAG_FIELDS, catalogue_keys, crawl, crawl_sandbox, sandbox_config

pytestmark = pytest.mark.anyio


def parse_api_time(text: str | None) -> datetime | None:
    """An independent reading of the API's timestamps (not crawler.output.normalize)."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def expected_manifest_columns(manifest: str) -> dict[str, Any]:
    doc = json.loads(manifest)
    layers = doc.get("layers") if "layers" in doc else doc.get("fsLayers")
    sizes = [layer["size"] for layer in (doc.get("layers") or []) if "size" in layer]
    platforms = None
    if "manifests" in doc:
        platforms = []
        for entry in doc["manifests"]:
            p = entry.get("platform") or {}
            text = f"{p.get('os')}/{p.get('architecture')}"
            platforms.append(text + (f"/{p['variant']}" if p.get("variant") else ""))
    return {
        "manifest_media_type": doc.get("mediaType"),
        "config_digest": (doc.get("config") or {}).get("digest"),
        "layer_count": None if layers is None else len(layers),
        "layers_size": sum(sizes) if sizes or doc.get("layers") == [] else None,
        "platforms": platforms,
    }


async def test_every_target_once_and_every_column_equals_the_catalogue(tmp_path: Path) -> None:
    """Each distinct target is once in tags+errors; every tag column equals the catalogue."""
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)
        extra = ["ghost/none:v1", "BAD_ns/x:1", "ns-only:tag", keys[0], keys[1]]
        outcome = await crawl(sb.url, keys + extra, tmp_path / "out")
    assert outcome.result.exit_code == 0
    tags = outcome.rows_by_key(outcome.tags)
    errors = outcome.errors.to_pylist()
    assert len(tags) == outcome.tags.num_rows == len(keys)
    assert set(tags) == set(keys)
    assert sorted(r["error_kind"] for r in errors) == [
        "invalid_target",
        "invalid_target",
        "not_found",
    ]
    extras = 0
    for key, row in tags.items():
        ns, rest = key.split("/", 1)
        repo, tag = rest.rsplit(":", 1)
        api = sb.catalogue.get(ns, repo, tag)
        assert api is not None
        for column in (
            "id",
            "repo_id",
            "image_id",
            "digest",
            "path",
            "internal_path",
            "domain_id",
            "schema",
            "tag_type",
            "size",
            "is_trusted",
            "manifest",
        ):
            assert row[column] == api.get(column), (key, column)
        assert row["created"] == parse_api_time(api.get("created"))
        assert row["updated"] == parse_api_time(api.get("updated"))
        for column, value in expected_manifest_columns(api["manifest"]).items():
            assert row[column] == value, (key, column)
        unknown = {k: v for k, v in api.items() if k not in TAG_FIELDS}
        assert (json.loads(row["extra"]) if row["extra"] else {}) == unknown, key
        extras += bool(unknown)
        assert row["attempts"] == 1
    assert extras, "the sandbox sends undocumented fields for some tags"
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["complete"] is True
    assert report["counts"]["ok"] == len(keys)
    assert report["counts"]["duplicates_dropped"] == 2


async def test_output_types_metadata_and_duckdb(tmp_path: Path) -> None:
    """The files have exactly the schema's Arrow types, run metadata, and DuckDB reads them."""
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)[:20]
        outcome = await crawl(sb.url, [*keys, "ghost/none:v1"], tmp_path / "out")
    out = tmp_path / "out"
    for directory, schema in (("tags", TAGS_SCHEMA), ("errors", ERRORS_SCHEMA)):
        for path in (out / directory).glob("*.parquet"):
            assert pq.read_schema(path).remove_metadata().equals(schema)
            meta = pq.read_metadata(path).metadata
            assert meta[META_RUN_ID].decode() == outcome.result.report.run_id
    types = duckdb.sql(
        f"SELECT typeof(created), typeof(fetched_at), typeof(platforms), count(*) "
        f"FROM read_parquet('{out}/tags/*.parquet') GROUP BY ALL"
    ).fetchall()
    assert types == [("TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE", "VARCHAR[]", 20)]
    kinds = duckdb.sql(
        f"SELECT error_kind, http_status FROM read_parquet('{out}/errors/*.parquet')"
    ).fetchall()
    assert kinds == [("not_found", 404)]


FAULT_TABLE = [
    # script of the target's successive answers, error kind (None = tags), attempts
    (["404"], "not_found", 1),
    (["400"], "client_error", 1),
    (["403"], "forbidden", 1),
    (["429"] * 9, "throttled", 4),
    (["429", "200"], None, 2),
    (["429:retry-after=1"], None, 2),
    (["500", "502", "503"], None, 4),
    (["504"] * 9, "server_error", 4),
    (["reset"] * 9, "network", 4),
    (["reset"], None, 2),
    (["slow"] * 9, "timeout", 4),
    (["truncated"] * 9, "decode", 4),
    (["truncated"], None, 2),
]


@pytest.mark.parametrize(("script", "kind", "attempts"), FAULT_TABLE)
async def test_fault_table_rows(
    tmp_path: Path, script: list[str], kind: str | None, attempts: int
) -> None:
    """Each row of the README's fault table ends in its row kind after the stated attempts,
    and `attempts` equals the requests the server actually received."""
    catalogue_cfg = sandbox_config()
    async with running_sandbox(catalogue_cfg) as sb:
        ns, repo, tag = next(iter(sb.catalogue.targets()))
        key = f"{ns}/{repo}:{tag}"
        other = catalogue_keys(sb.catalogue)[1:4]
        faults = FaultConfig(scripts={key: script}, slow_seconds=5.0)
    async with running_sandbox(sandbox_config(faults=faults)) as sb:
        outcome = await crawl(sb.url, [key, *other], tmp_path / "out", max_attempts=4, timeout=0.5)
        served = sb.stats.per_target[key]
    tags = outcome.rows_by_key(outcome.tags)
    errors = outcome.rows_by_key(outcome.errors)
    assert set(tags) | set(errors) == {key, *other}
    assert not set(tags) & set(errors)
    row = errors[key] if kind else tags[key]
    if kind:
        assert row["error_kind"] == kind
    assert row["attempts"] == attempts == served
    expected_exit = 0 if kind in (None, "not_found", "client_error", "forbidden") else 1
    assert outcome.result.exit_code == expected_exit


async def test_error_rows_carry_the_huawei_code_and_message(tmp_path: Path) -> None:
    """error_code/error_msg come from the body (404 SVCSTG.SWR.4040010, 429 APIG.0308)."""
    async with running_sandbox(sandbox_config()) as sb:
        ns, repo, tag = next(iter(sb.catalogue.targets()))
    key = f"{ns}/{repo}:{tag}"
    faults = FaultConfig(scripts={key: ["429"] * 5})
    async with running_sandbox(sandbox_config(faults=faults)) as sb:
        outcome = await crawl(sb.url, [key, "ghost/none:v1"], tmp_path / "out", max_attempts=2)
    errors = outcome.rows_by_key(outcome.errors)
    assert errors[key]["error_code"] == "APIG.0308"
    assert errors[key]["http_status"] == 429
    assert errors["ghost/none:v1"]["error_code"] == "SVCSTG.SWR.4040010"
    assert errors["ghost/none:v1"]["error_msg"]


async def test_concurrency_bound_over_real_sockets(tmp_path: Path) -> None:
    """With 50 ms latency the server never sees more than --concurrency requests at once."""
    config = sandbox_config(faults=FaultConfig(latency=0.05))
    keys, outcome, stats = await crawl_sandbox(config, tmp_path / "out", concurrency=5)
    assert outcome.tags.num_rows == len(keys)
    assert 2 <= stats.peak_in_flight <= 5


async def test_server_rate_limit_below_client_rate_still_completes(tmp_path: Path) -> None:
    """The sandbox throttles at 40/s, the client asks 80/s: 429s happen, every row still arrives."""
    faults = FaultConfig(rate_limit=40.0, rate_burst=1)
    keys, outcome, stats = await crawl_sandbox(
        sandbox_config(faults=faults),
        tmp_path / "out",
        rate=80,
        burst=1,
        max_attempts=8,
        backoff_initial=0.05,
        backoff_max=0.5,
    )
    assert outcome.tags.num_rows == len(keys)
    assert outcome.errors.num_rows == 0
    assert stats.throttled > 0
    assert outcome.result.report.stats.throttled == stats.throttled


async def test_bad_token_stops_the_run_fast(tmp_path: Path) -> None:
    """A 401 with a static token: at most the in-flight requests go out, exit 1, rest unrecorded."""
    config = sandbox_config(faults=FaultConfig(latency=0.01))
    environ = {"SWR_AUTH_TOKEN": "wrong"}
    keys, outcome, stats = await crawl_sandbox(
        config, tmp_path / "out", concurrency=4, environ=environ
    )
    assert outcome.result.exit_code == 1
    assert outcome.result.report.stop_reason == "unauthorized"
    assert 1 <= stats.tag_requests <= 4
    assert {r["error_kind"] for r in outcome.errors.to_pylist()} == {"unauthorized"}
    assert outcome.tags.num_rows + outcome.errors.num_rows < len(keys)
    report = json.loads((tmp_path / "out" / "run.json").read_text())
    assert report["complete"] is False
