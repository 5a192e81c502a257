"""The ``inventory`` scenario: what list mode and planned crawls save against a quota.

A sandbox registry of 20,000 tags (``--quick``: 2,000), some repositories over
1,000 tags, behind a server limit of 20 requests/s (the gateway's per-user
quota; swr-crawler runs at its default ``--rate 20``). Measured, each once
(the figures are request counts and minutes, not noise-sensitive ratios):

- ``crawl --discover --mode list`` against ``--mode detail``: the whole registry;
- ``crawl --targets F --mode auto`` against ``--mode detail`` for a targets file
  where half the repositories are dense (a third of their tags wanted) and the
  other half sparse (two tags each).

Requests are the run's own count (``run.json``), every retry included; wall
time is from spawning the process to its exit.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.harness import SandboxSpec, run_crawl, sandbox
from bench.scenarios import figure

RATE = 20.0


@dataclass(frozen=True)
class Inventory:
    """The inventory scenario's registry and the share of a dense repository wanted."""

    name: str
    title: str
    spec: SandboxSpec
    dense_share: float = 1 / 3
    sparse_tags: int = 2


def inventory_scenario(quick: bool) -> Inventory:
    """20,000 tags in 40 repositories (2,000 in 8 for ``--quick``), sizes from 20 to 2,500."""
    if quick:
        counts: tuple[int, ...] = (1100, 300, 150, 200, 120, 50, 60, 20)
        spec = SandboxSpec(namespaces=1, repos=8, tags=1, tag_counts=counts)
    else:
        counts = (2500, 300, 150, 1200, 100, 50, 400, 200, 80, 20)
        spec = SandboxSpec(namespaces=4, repos=10, tags=1, tag_counts=counts)
    limited = replace(
        spec,
        rate_limit=RATE,
        # A per-minute quota tolerates a second's burst; this is stricter still.
        rate_burst=int(RATE),
        cache_size=spec.size + 1024,
        all_fields=True,
    )
    return Inventory(
        "inventory",
        f"{limited.size:,} tags behind a server limit of {RATE:g} requests/s",
        limited,
    )


def dense_half(targets: Path, out: Path, dense_share: float, sparse_tags: int) -> dict[str, int]:
    """Write a targets file from the registry's full list: every other repository
    dense (``dense_share`` of its tags), the others sparse (``sparse_tags`` each)."""
    by_repository: dict[str, list[str]] = defaultdict(list)
    with targets.open(encoding="utf-8") as source:
        for line in source:
            name, _, _ = line.strip().rpartition(":")
            by_repository[name].append(line)
    lines = 0
    dense = 0
    with out.open("w", encoding="utf-8") as sink:
        for index, name in enumerate(sorted(by_repository)):
            tags = by_repository[name]
            if index % 2 == 0:
                dense += 1
                take = tags[:: max(1, round(1 / dense_share))]
            else:
                take = tags[:sparse_tags]
            sink.writelines(take)
            lines += len(take)
    return {"targets": lines, "repositories": len(by_repository), "dense_repositories": dense}


def _crawl(url: str, args: Sequence[str], out: Path) -> dict[str, Any]:
    status, report, cost = run_crawl(url, out, [*args, "--rate", str(RATE)])
    return {
        "exit": status,
        "complete": report["complete"],
        "rows": cost.rows,
        "errors": cost.errors,
        "requests": cost.requests,
        "requests_by_api": report["counts"].get("requests_by_api"),
        "throttled_429": cost.throttled,
        "elapsed": cost.elapsed,
        "wall": round(cost.wall, 3),
        "peak_rss_mb": round(cost.peak_rss / 2**20, 1),
    }


def run_inventory(scenario: Inventory, workdir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the four crawls once each; their costs and the figures."""
    runs: dict[str, dict[str, Any]] = {}
    with sandbox(scenario.spec, workdir) as box:
        planned = workdir / "targets-dense-half.txt"
        shape = dense_half(box.targets, planned, scenario.dense_share, scenario.sparse_tags)
        plans = {
            "discover list": ["--discover", "--mode", "list"],
            "discover detail": ["--discover", "--mode", "detail"],
            "targets auto": ["--targets", str(planned), "--mode", "auto"],
            "targets detail": ["--targets", str(planned), "--mode", "detail"],
        }
        for label, args in plans.items():
            out = workdir / f"out-inventory-{label.replace(' ', '-')}"
            try:
                runs[label] = result = _crawl(box.url, args, out)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            say(
                f"  inventory {label:16s} {result['rows']:7,} rows  {result['requests']:7,} "
                f"requests  {result['wall']:8.1f} s  429s {result['throttled_429']}"
            )
    return {
        "title": scenario.title,
        "rate": RATE,
        "sandbox": {
            "tags": scenario.spec.size,
            "namespaces": scenario.spec.namespaces,
            "repositories_per_namespace": scenario.spec.repos,
            "tag_counts": list(scenario.spec.tag_counts),
            "rate_limit": scenario.spec.rate_limit,
            "rate_burst": scenario.spec.rate_burst,
        },
        "targets_file": shape,
        "runs": runs,
        "figures": inventory_figures(runs),
    }


def inventory_figures(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests and wall time saved, each with its target (auto's for reference)."""

    def ratio(slow: str, fast: str, key: str) -> float:
        return float(runs[slow][key]) / max(float(runs[fast][key]), 1e-9)

    figures = [
        figure(
            "discover: detail / list requests",
            ratio("discover detail", "discover list", "requests"),
            100,
        ),
        figure(
            "discover: detail / list wall time",
            ratio("discover detail", "discover list", "wall"),
            50,
        ),
        figure(
            "targets: detail / auto requests",
            ratio("targets detail", "targets auto", "requests"),
            None,
        ),
        figure(
            "targets: detail / auto wall time",
            ratio("targets detail", "targets auto", "wall"),
            None,
        ),
    ]
    same = all(
        runs[a]["rows"] == runs[b]["rows"] and runs[a]["errors"] == runs[b]["errors"]
        for a, b in (("discover list", "discover detail"), ("targets auto", "targets detail"))
    )
    figures.append(figure("same rows and errors in both modes", float(same), 1))
    return figures
