"""Helpers for end-to-end tests: a crawl over real loopback sockets against the sandbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.config import build_config
from crawler.run.runner import RunResult, run_crawl

TOKEN = "e2e-token"


@dataclass
class Outcome:
    result: RunResult
    tags: pa.Table
    errors: pa.Table

    def rows_by_key(self, table: pa.Table) -> dict[str, dict[str, Any]]:
        rows = table.to_pylist()
        return {f"{r['namespace']}/{r['repository']}:{r['tag']}": r for r in rows}


def read_dataset(directory: Path, schema: pa.Schema) -> pa.Table:
    files = sorted(directory.glob("*.parquet"))
    if not files:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(f) for f in files)


async def crawl(
    url: str,
    lines: Sequence[str],
    out: Path,
    *,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> Outcome:
    """Write ``lines`` as a targets file and crawl them into ``out`` with the real pipeline."""
    from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA

    out.mkdir(parents=True, exist_ok=True)
    targets = out.parent / f"{out.name}-targets.txt"
    targets.write_text("\n".join(lines) + "\n")
    flags = {
        "targets": str(targets),
        "out": str(out),
        "endpoint": url,
        "rate": 0,
        "concurrency": 8,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "progress": False,
        "seed": 1,
        **settings,
    }
    config = build_config(flags, environ={})
    env = {"SWR_AUTH_TOKEN": TOKEN} if environ is None else environ
    result = await run_crawl(config, environ=env, handle_signals=False)
    return Outcome(
        result,
        read_dataset(out / "tags", TAGS_SCHEMA),
        read_dataset(out / "errors", ERRORS_SCHEMA),
    )
