"""Helpers for end-to-end tests: a crawl over real loopback sockets against the sandbox."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from huaweicloudsdkswr.v2.model.show_repo_tag_response import ShowRepoTagResponse
from prometheus_client.parser import text_string_to_metric_families

from crawler.config import build_config
from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA, with_metadata
from crawler.run.dataset_run import run_dataset
from crawler.run.runner import RunResult, run_crawl
from crawler.sandbox.server import SandboxConfig, Stats, running_sandbox

TOKEN = "e2e-token"
#: A catalogue of 72 targets: big enough for concurrency, small enough for a quick test.
SMALL: dict[str, Any] = {"seed": 3, "namespaces": 3, "repos_per_namespace": 4, "tags_per_repo": 6}
#: The IAM account and user the sandboxes of the credential tests know.
IAM_DOMAIN, IAM_USER = "acme", "crawler-bot"
#: The fields of a tag object in the API page's order, as the official SDK's model reads them:
#: a record kept apart from both the sandbox and the crawler's normalize.
TAG_FIELDS: tuple[str, ...] = tuple(ShowRepoTagResponse.attribute_map.values())
#: The run id of the part files :func:`write_part` writes unless told another.
PART_RUN = "20260101T000000Z-abcdef"


class HasTargets(Protocol):
    def targets(self) -> Iterable[tuple[str, str, str]]: ...


def sandbox_config(**overrides: Any) -> SandboxConfig:
    """A ``SMALL`` catalogue that accepts ``TOKEN``; any field may be overridden."""
    settings: dict[str, Any] = {**SMALL, "tokens": frozenset({TOKEN}), **overrides}
    return SandboxConfig(**settings)


def credential_settings(token: str, ak: str, sk: str, password: str) -> dict[str, Any]:
    """Sandbox settings that accept ``token``, the pair ``ak``/``sk`` and ``IAM_USER``'s
    ``password``."""
    return {
        "tokens": frozenset({token}),
        "credentials": {ak: sk},
        "iam_users": [(IAM_DOMAIN, IAM_USER, password)],
    }


def catalogue_keys(catalogue: HasTargets) -> list[str]:
    """Every target of a sandbox catalogue as a ``namespace/repository:tag`` line."""
    return [f"{ns}/{repo}:{tag}" for ns, repo, tag in catalogue.targets()]


def write_targets(catalogue: HasTargets, path: Path) -> list[str]:
    """Write every target of ``catalogue`` to the targets file ``path``; return them."""
    keys = catalogue_keys(catalogue)
    path.write_text("\n".join(keys) + "\n")
    return keys


def row_keys(table: pa.Table) -> list[str]:
    """The ``namespace/repository:tag`` key of every row of a tags or errors table."""
    columns = table.select(["namespace", "repository", "tag"]).to_pylist()
    return [f"{r['namespace']}/{r['repository']}:{r['tag']}" for r in columns]


def metric_samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a metrics file, read with prometheus_client's parser:
    (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def iam_env(endpoint: str, password: str) -> dict[str, str]:
    """The IAM password-login variables for ``IAM_USER``, IAM at ``endpoint``."""
    return {
        "SWR_IAM_USER": IAM_USER,
        "SWR_IAM_PASSWORD": password,
        "SWR_IAM_DOMAIN": IAM_DOMAIN,
        "SWR_IAM_PROJECT": "cn-north-4",
        "SWR_IAM_ENDPOINT": endpoint,
    }


#: ``python -m crawler``: the command line of a real crawler process.
CRAWLER = (sys.executable, "-m", "crawler")


def crawl_args(targets: Path | str, out: Path, endpoint: str, *extra: str) -> list[str]:
    """The arguments of ``swr-crawler crawl`` for a targets file, an output and an endpoint
    (``--mode detail``, as in :func:`crawl`, unless ``extra`` gives another)."""
    mode = [] if "--mode" in extra else ["--mode", "detail"]
    return [
        "crawl",
        "--targets",
        str(targets),
        "--out",
        str(out),
        "--endpoint",
        endpoint,
        *mode,
        *extra,
    ]


def run_cli(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m crawler ARGS`` as a process in a clean environment (PATH plus ``env``)."""
    return subprocess.run(
        [*CRAWLER, *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin"), **env},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@dataclass
class Outcome:
    result: RunResult
    tags: pa.Table
    errors: pa.Table

    def rows_by_key(self, table: pa.Table) -> dict[str, dict[str, Any]]:
        return dict(zip(row_keys(table), table.to_pylist(), strict=True))


def write_part(
    out: Path, dataset: str, seq: int, rows: list[dict[str, Any]], run: str = PART_RUN
) -> Path:
    """Part ``seq`` of ``dataset`` (``tags`` or ``errors``) under ``out``, as run ``run``
    would name it: the dataset's schema with the run's metadata; absent fields are null."""
    schema = with_metadata(TAGS_SCHEMA if dataset == "tags" else ERRORS_SCHEMA, run)
    path = out / dataset / f"part-{run}-{seq:05d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def read_dataset(directory: Path, schema: pa.Schema) -> pa.Table:
    files = sorted(directory.glob("*.parquet"))
    if not files:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(f) for f in files)


async def crawl(
    url: str,
    lines: Sequence[str] | None,
    out: Path,
    *,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> Outcome:
    """Write ``lines`` as a targets file and crawl them into ``out`` with the real pipeline
    (``lines`` None: no targets file, for ``discover=True``).

    ``mode`` is ``detail`` unless given: most end-to-end tests count and script the
    ShowRepoTag requests of each target; planned crawls (``auto``) are tested apart.
    """
    from crawler.output.schema import ERRORS_SCHEMA, TAGS_SCHEMA

    out.mkdir(parents=True, exist_ok=True)
    targets = None
    if lines is not None:
        targets = out.parent / f"{out.name}-targets.txt"
        targets.write_text("\n".join(lines) + "\n")
    flags = {
        "targets": None if targets is None else str(targets),
        "out": str(out),
        "endpoint": url,
        "rate": 0,
        "concurrency": 8,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "progress": False,
        "seed": 1,
        "mode": "detail",
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


async def crawl_sandbox(
    config: SandboxConfig, out: Path, **settings: Any
) -> tuple[list[str], Outcome, Stats]:
    """Start a sandbox with ``config`` and :func:`crawl` every one of its targets into ``out``;
    the targets, the outcome and the sandbox's counters."""
    async with running_sandbox(config) as sb:
        keys = catalogue_keys(sb.catalogue)
        return keys, await crawl(sb.url, keys, out, **settings), sb.stats


async def crawl_snapshot(
    catalogue: Mapping[str, Any],
    dataset: str,
    day: str,
    generation: int,
    *,
    targets_dir: Path,
    token: str = TOKEN,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> tuple[RunResult | None, dict[str, str]]:
    """Crawl every tag of a sandbox with ``catalogue``'s ``generation`` as the ``day`` snapshot
    of the dataset at ``dataset`` (credential ``token``, plus ``environ``), the targets file in
    ``targets_dir``; the result and every target's digest."""
    config = SandboxConfig(**catalogue, generation=generation, tokens=frozenset({TOKEN}))
    async with running_sandbox(config) as sb:
        path = targets_dir / f"targets-{generation}.txt"
        keys = write_targets(sb.catalogue, path)
        flags = {
            "targets": str(path),
            "dataset": dataset,
            "snapshot_date": day,
            "endpoint": sb.url,
            "rate": 0,
            "concurrency": 4,
            "progress": False,
            "seed": 1,
            **settings,
        }
        result = await run_dataset(
            build_config(flags, environ={}),
            environ={"SWR_AUTH_TOKEN": token, **(environ or {})},
            handle_signals=False,
        )
        targets = sb.catalogue.targets()
        digests = {k: sb.catalogue.get(*t)["digest"] for k, t in zip(keys, targets, strict=True)}
        return result, digests  # type: ignore[return-value]
